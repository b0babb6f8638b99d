"""ONNX Runtime sessions of the streaming path, without torch (what the live node runs).

:class:`OnnxStreamingSessions` runs the two graphs a checkpoint embeds
(:class:`checkpoint.StreamingGraphs`, exported by :func:`export.streaming_graphs` at save
time): ``frames`` (chunk (1, C, L) -> frames (1, T, F)) and ``head`` (frames (1,
num_frames, F) -> pose (1, out)). Their inputs and outputs are checked against the
checkpoint's hyperparameters when the sessions are built.
"""

from __future__ import annotations

import numpy as np

from .architecture import NetworkConfig
from .checkpoint import CheckpointError, StreamingGraphs


def session(model_bytes: bytes | str, threads: int | None = None):
    """An ONNX Runtime CPU session of a serialised graph (or a file path)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, sess_options=opts,
                                providers=["CPUExecutionProvider"])


def _check_io(sess, graph: str, inputs: tuple, outputs: tuple) -> None:
    """Names and fixed dimensions (None: any) of the single input and output."""
    for kind, args, expected in (("input", sess.get_inputs(), inputs),
                                 ("output", sess.get_outputs(), outputs)):
        name, dims = expected[0], expected[1:]
        shape = list(args[0].shape) if len(args) == 1 else []
        ok = (len(args) == 1 and args[0].name == name and len(shape) == len(dims)
              and all(d is None or s == d for s, d in zip(shape, dims)))
        if not ok:
            got = [(a.name, a.shape) for a in args]
            raise CheckpointError(f"embedded ONNX graph {graph!r} does not match the "
                                  f"hyperparameters: {kind} {got}, expected {name} {dims}")


class OnnxStreamingSessions:
    """frames(chunk (C, L)) -> (T, F) and head(frames (num_frames, F)) -> (out,)."""

    def __init__(self, config: NetworkConfig, graphs: StreamingGraphs,
                 threads: int | None = None) -> None:
        c = config
        self._frames = session(graphs.frames, threads)
        self._head = session(graphs.head, threads)
        _check_io(self._frames, "frames", ("chunk", 1, c.in_channels, None),
                  ("frames", 1, None, c.frame_width))
        _check_io(self._head, "head", ("frames", 1, c.num_frames, c.frame_width),
                  ("pose", 1, c.out_dim))

    def frames(self, chunk: np.ndarray) -> np.ndarray:  # (C, L) -> (T, F)
        return self._frames.run(None, {"chunk": chunk[None].astype(np.float32, copy=False)})[0][0]

    def head(self, frames: np.ndarray) -> np.ndarray:  # (T, F) -> (out,)
        return self._head.run(None, {"frames": frames[None].astype(np.float32, copy=False)})[0][0]
