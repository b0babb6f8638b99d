"""Any BrainFlow board as an EMG source (PyPI ``brainflow``: its native libraries are in the
wheel; the synthetic board and the serial boards need no network).

BrainFlow opens the board (OpenBCI Cyton / Daisy / Ganglion, Callibri, gForce, Neurosity,
...) from a board id and ``BrainFlowInputParams``; its data is a (rows, samples) array with
the EXG channels in microvolts, a timestamp row (host time of acquisition, seconds since the
epoch) and, on most boards, a package-number row (a counter that wraps at 256). This source
publishes the EMG rows (``get_emg_channels`` or a chosen list) in volts, indexes samples by
the package number (a gap is dropped samples; boards that number every other package, such
as the Cyton + Daisy, are detected by their step) and stamps them on the acquisition clock
fitted to BrainFlow's timestamps. ``brainflow`` is imported when the source is made, so the
rest of the driver runs without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emg_hand_core.units import MICROVOLT

from .pipeline import ChunkSink, EventSink
from .sources import LibrarySource

PACKAGE_MODULUS = 256


def board_id(name: str) -> int:
    """A BoardIds name (any case, with or without ``_BOARD``) or number -> the board id;
    ValueError naming some known boards."""
    from brainflow.board_shim import BoardIds

    text = name.strip()
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None:
        key = text.upper().replace("-", "_")
        for candidate in (key, key + "_BOARD"):
            if candidate in BoardIds.__members__:
                return int(BoardIds[candidate].value)
        known = ", ".join(m.lower().removesuffix("_board")
                          for m in list(BoardIds.__members__)[:12])
        raise ValueError(f"unknown BrainFlow board {name!r}; known: {known}, ... (BoardIds)")
    if value not in {int(m.value) for m in BoardIds}:
        raise ValueError(f"unknown BrainFlow board id {value}")
    return value


def package_step(counters: np.ndarray, modulus: int = PACKAGE_MODULUS) -> int:
    """How much the package number grows per sample (1; 2 for boards that number pairs)."""
    d = np.diff(counters.astype(np.int64)) % modulus
    d = d[d > 0]
    if len(d) == 0:
        return 1
    values, counts = np.unique(d, return_counts=True)
    return int(values[np.argmax(counts)])


class BrainFlowSource(LibrarySource):
    """A BrainFlow board, read on a thread (``get_board_data`` every ``poll_s``)."""

    kind = "brainflow"

    def __init__(self, board: str, input_params: dict[str, Any], channels: list[int],
                 chunk_ms: float, clock: Callable[[], float], on_chunks: ChunkSink,
                 on_event: EventSink, **kw: Any) -> None:
        from brainflow.board_shim import BoardShim

        from .stream import chunk_len_for

        self.board_id = board_id(board)
        self.board_name = board
        self.input_params = {k: v for k, v in input_params.items() if v not in ("", 0)}
        rate = float(BoardShim.get_sampling_rate(self.board_id))
        descr = BoardShim.get_board_descr(self.board_id)
        if channels:
            rows = int(descr.get("num_rows", 0))
            bad = [c for c in channels if not 0 <= c < rows]
            if bad:
                raise ValueError(f"brainflow_channels {bad} are not rows of board "
                                 f"{board!r} (0..{rows - 1})")
            self.rows = list(channels)
        else:
            try:
                self.rows = list(BoardShim.get_emg_channels(self.board_id))
            except Exception as exc:
                raise ValueError(f"board {board!r} has no EMG channels in BrainFlow; choose "
                                 f"rows with brainflow_channels ({exc})") from None
        self.timestamp_row = int(BoardShim.get_timestamp_channel(self.board_id))
        try:
            self.package_row: int | None = int(BoardShim.get_package_num_channel(self.board_id))
        except Exception:
            self.package_row = None
        super().__init__(rate, len(self.rows), chunk_len_for(chunk_ms, rate), clock,
                         on_chunks, on_event, **kw)
        self._board = None
        self._step: int | None = None

    @property
    def hardware_id(self) -> str:
        where = self.input_params.get("serial_port") or self.input_params.get(
            "mac_address") or self.input_params.get("ip_address") or ""
        return f"brainflow {self.board_name}" + (f" on {where}" if where else "")

    def describe(self) -> str:
        return f"{super().describe()}, BrainFlow board {self.board_name} (id {self.board_id})"

    def _connect(self) -> None:
        from brainflow.board_shim import BoardShim, BrainFlowInputParams

        BoardShim.disable_board_logger()
        params = BrainFlowInputParams()
        for key, value in self.input_params.items():
            setattr(params, key, value)
        board = BoardShim(self.board_id, params)
        board.prepare_session()
        try:
            board.start_stream(45000)
        except Exception:
            board.release_session()
            raise
        self._board = board
        self._step = None

    def _disconnect(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        try:
            board.stop_stream()
        finally:
            board.release_session()

    def _read(self, now_s: float) -> int:
        board = self._board
        if board is None or board.get_board_data_count() == 0:
            return 0
        data = board.get_board_data()
        n = data.shape[1]
        if n == 0:
            return 0
        values = (data[self.rows].T * MICROVOLT).astype(np.float32)
        counters, modulus = None, 0
        if self.package_row is not None:
            raw = np.rint(data[self.package_row]).astype(np.int64) % PACKAGE_MODULUS
            if self._step is None and n >= 3:
                self._step = package_step(raw)
            step = self._step or 1
            counters, modulus = raw // step, PACKAGE_MODULUS // step
        self.pipeline.push(values, data[self.timestamp_row], counters, modulus)
        return n

    def status(self) -> dict[str, Any]:
        return {**super().status(), "brainflow_board": self.board_name,
                "brainflow_board_id": self.board_id, "brainflow_package_step": self._step}


__all__ = ["BrainFlowSource", "board_id", "package_step"]
