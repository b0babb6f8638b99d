"""The live inference loop of ``emg_pose``: EMG chunks in, poses out. No rclpy, no torch.

:class:`InferenceWorker` owns everything between the EMG subscription and the pose
publishers:

* :meth:`~InferenceWorker.on_message` (the subscription callback; never blocks): decodes the
  message (:func:`emg_hand_core.emg_codec.decode_emg`), judges the chunk with the running
  model's :class:`stream_guard.EmgStreamGuard`, queues it (dropping the oldest beyond
  ``max_queue_s``), and hands it to a calibration recording if one is running;
* a thread that runs the model at most ``update_rate_hz`` times a second on everything
  queued (:class:`streaming.StreamingPredictor`), keeps the last window of samples
  (:class:`stream_guard.SampleRing`) and the stamps of recent chunks, maps the newest
  prediction to its EMG sample's acquisition time, clamps it to the joint limits,
  optionally smooths it (:class:`one_euro.OneEuroFilter`) and calls ``publish(pose)``;
* :meth:`~InferenceWorker.swap`: a new model is handed to that thread, which primes it with
  the last window of samples before it replaces the old one, so publishing does not pause;
* counters and percentiles for diagnostics (:meth:`~InferenceWorker.snapshot`).

A slow step never delays EMG reception, and nothing raised by one step stops the loop.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emg_hand_core.emg_codec import EmgChunk, EmgDecodeError, decode_emg
from emg_hand_core.hand_model import clamp_to_limits, forward_kinematics

from .calibration import CalibrationRecording
from .model_store import LoadedModel, ModelLoadError
from .one_euro import OneEuroFilter
from .stream_guard import EmgStreamGuard, Fault, SampleRing

STAMP_HISTORY = 400  # recent chunks kept to map a stream index to its acquisition time
STATS_WINDOW = 2000  # inference / latency samples kept for percentiles
PRIMING_MARGIN = 64  # samples kept beyond the window, for priming a swapped-in model


class Percentiles:
    """Rolling p50/p99 of the last ``STATS_WINDOW`` values."""

    def __init__(self) -> None:
        self._values: collections.deque[float] = collections.deque(maxlen=STATS_WINDOW)

    def add(self, value: float) -> None:
        self._values.append(value)

    def summary(self, scale: float = 1.0) -> str:
        if not self._values:
            return "n/a"
        a = np.asarray(self._values) * scale
        return f"p50 {np.percentile(a, 50):.2f} p99 {np.percentile(a, 99):.2f}"


@dataclass(frozen=True)
class Smoothing:
    """One Euro filter settings (``enabled`` False: the raw model output is published)."""

    enabled: bool = False
    min_cutoff_hz: float = 2.0
    beta: float = 0.3
    d_cutoff_hz: float = 1.0

    def make_filter(self) -> OneEuroFilter:
        return OneEuroFilter(self.min_cutoff_hz, self.beta, self.d_cutoff_hz)


@dataclass(frozen=True)
class Pose:
    """What is published: joint angles (20,) [rad] within the limits, their keypoints (21, 3)
    [m] in hand_base, stamped with the acquisition time of the newest EMG sample used."""

    joint_angles: np.ndarray
    keypoints: np.ndarray
    stamp_ns: int


@dataclass
class Stats:
    """Since the previous snapshot: chunks/samples in and poses out; totals otherwise."""

    seconds: float
    chunks: int
    samples: int
    published: int
    no_model: int
    malformed: int
    queue_overflow: int
    faults: dict[Fault, int] = field(default_factory=dict)
    inference_ms: str = "n/a"
    latency_ms: str = "n/a"


@dataclass
class _Chunk:
    reset: bool
    first_index: int
    stamp_ns: int
    samples: np.ndarray
    rate_hz: float


class InferenceWorker:
    """See the module docstring. ``publish(Pose)`` and ``report(text)`` run on the inference
    thread (``report`` also on the caller of :meth:`on_message`); ``now_ns()`` is the clock
    latency is measured against (the node's ROS clock)."""

    def __init__(self, publish: Callable[[Pose], None], *, update_rate_hz: float = 50.0,
                 max_queue_s: float = 1.0, smoothing: Smoothing = Smoothing(),
                 report: Callable[[str], None] | None = None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self._publish = publish
        self._report = report or (lambda _text: None)
        self._now_ns = now_ns
        self.update_rate_hz = float(update_rate_hz)
        self.max_queue_s = float(max_queue_s)
        self._smoothing = smoothing
        self._filter = smoothing.make_filter()
        self._lock = threading.Lock()  # queue, pending model, recorder, counters
        self._swapped = threading.Condition(self._lock)
        self._queue: collections.deque[_Chunk] = collections.deque()
        self._queued_samples = 0
        self._pending: LoadedModel | None = None
        self._swap_error: str | None = None
        self._model: LoadedModel | None = None
        self._guard: EmgStreamGuard | None = None
        self._history: SampleRing | None = None
        self._stamps: collections.deque[tuple[int, int, float]] = collections.deque(
            maxlen=STAMP_HISTORY)
        self._last_published_index: int | None = None
        self._stream_shape: tuple[int, float] | None = None
        self._recorder: CalibrationRecording | None = None
        self._record_breaks: list[int] = []
        self._counts = {"chunks": 0, "samples": 0, "published": 0, "no_model": 0,
                        "malformed": 0, "queue_overflow": 0}
        self._faults: dict[Fault, int] = {f: 0 for f in Fault}
        self._inference_ms = Percentiles()
        self._latency_ms = Percentiles()
        self._stats_t0 = time.monotonic()
        self._stop = threading.Event()
        self._data_ready = threading.Event()
        self._thread: threading.Thread | None = None

    # --- settings (run-time parameter changes) -------------------------------------------
    def configure(self, *, update_rate_hz: float | None = None, max_queue_s: float | None = None,
                  smoothing: Smoothing | None = None) -> None:
        if update_rate_hz is not None:
            self.update_rate_hz = float(update_rate_hz)
        if max_queue_s is not None:
            self.max_queue_s = float(max_queue_s)
        if smoothing is not None and smoothing != self._smoothing:
            self._smoothing = smoothing
            self._filter = smoothing.make_filter()

    # --- models --------------------------------------------------------------------------
    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def stream_shape(self) -> tuple[int, float] | None:
        """(channels, sample rate) of the EMG stream last seen (with a plausible rate)."""
        return self._stream_shape

    def install(self, model: LoadedModel) -> None:
        """Make ``model`` the running one now (before :meth:`start`, or on the thread)."""
        ckpt = model.checkpoint
        window = int(math.ceil(ckpt.window_s * ckpt.sample_rate_hz)) + PRIMING_MARGIN
        history = self._history
        if history is not None and history.filled:
            samples = history.latest(history.filled)
            first = history.newest_index - history.filled + 1
            try:  # prime the new model with the last window: no publish gap at the swap
                model.predictor.push(np.array(samples), first_sample_index=first)
            except ValueError:
                model.predictor.reset()
        if history is None or history.capacity < window or history.channels != ckpt.in_channels:
            history = SampleRing(window, ckpt.in_channels)
        guard = EmgStreamGuard(ckpt.in_channels, ckpt.sample_rate_hz)
        with self._lock:  # all or nothing
            self._model, self._guard, self._history = model, guard, history
        self._filter.reset()

    def swap(self, model: LoadedModel, timeout_s: float = 10.0) -> None:
        """Hand ``model`` to the inference thread and wait until it runs. Raises
        ModelLoadError if it could not be installed, TimeoutError if the thread did not
        take it (the running model is kept in both cases)."""
        if self._thread is None or not self._thread.is_alive():
            try:
                self.install(model)
            except Exception as err:
                raise ModelLoadError(f"{type(err).__name__}: {err}") from err
            return
        with self._lock:
            self._pending, self._swap_error = model, None
            self._data_ready.set()
            if not self._swapped.wait_for(lambda: self._pending is None, timeout_s):
                self._pending = None
                raise TimeoutError("the inference thread did not take the new model")
            if self._swap_error is not None:
                raise ModelLoadError(self._swap_error)

    # --- EMG in (the subscription's thread) -------------------------------------------------
    def on_message(self, msg) -> None:
        """An ``emg_interfaces/msg/EMG`` (or any object with its fields)."""
        try:
            chunk = decode_emg(msg)
        except EmgDecodeError as err:
            with self._lock:
                self._counts["malformed"] += 1
            self._report(f"malformed EMG chunk: {err}")
            return
        self.on_chunk(chunk)

    def on_chunk(self, chunk: EmgChunk) -> None:
        samples, stamp_ns, first = chunk.samples, chunk.stamp_ns, chunk.first_sample_index
        rate, n = chunk.sample_rate_hz, chunk.num_samples
        with self._lock:
            if math.isfinite(rate) and rate > 0:
                self._stream_shape = (chunk.num_channels, rate)
            self._counts["chunks"] += 1
            self._counts["samples"] += n
            guard = self._guard
            if guard is None:
                self._counts["no_model"] += 1
                verdict = None
            else:
                verdict = guard.check(first, stamp_ns, samples, rate)
                if verdict.fault is not None:
                    self._faults[verdict.fault] += 1
            if verdict is not None and verdict.accept:
                self._queue.append(_Chunk(verdict.reset, first, stamp_ns, samples, rate))
                self._queued_samples += n
                limit = self.max_queue_s * rate
                while self._queued_samples > limit and len(self._queue) > 1:
                    dropped = self._queue.popleft()
                    self._queued_samples -= dropped.samples.shape[0]
                    self._queue[0].reset = True
                    self._counts["queue_overflow"] += 1
                if self._recorder is not None:
                    if verdict.reset:
                        self._record_breaks.append(self._recorder.samples)
                    self._recorder.add_chunk(samples, stamp_ns * 1e-9, rate)
            self._data_ready.set()
        if verdict is None:
            self._report("EMG arriving but no model is loaded: no pose is published; "
                         "load one with ~/load_model")
        elif verdict.fault is not None:
            what = "stream restarted" if verdict.reset else "no pose from it"
            self._report(f"{verdict.fault.value}: {verdict.detail} ({what})")

    # --- calibration recording ---------------------------------------------------------------
    def start_recording(self) -> CalibrationRecording:
        """Record every accepted chunk from now on (for the running model's channels)."""
        with self._lock:
            if self._model is None:
                raise ModelLoadError("no model is loaded")
            self._recorder = CalibrationRecording(self._model.checkpoint.in_channels)
            self._record_breaks = []
            return self._recorder

    def stop_recording(self) -> list[int]:
        """Stop recording; the recording's sample numbers where the stream restarted."""
        with self._lock:
            self._recorder = None
            return list(self._record_breaks)

    # --- the thread --------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread; no ``publish`` call happens after this returns (unless the
        thread is stuck for ``timeout_s`` in a step)."""
        self._stop.set()
        self._data_ready.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        """Run the model as soon as EMG arrives, at most update_rate_hz times a second (and
        at least that often, so a pending model swap happens without EMG)."""
        last = 0.0
        while not self._stop.is_set():
            period = 1.0 / self.update_rate_hz
            self._data_ready.wait(period)
            early = last + period - time.monotonic()
            if early > 0 and self._stop.wait(early):
                break
            if self._stop.is_set():
                break
            self._data_ready.clear()
            last = time.monotonic()
            try:
                self.step()
            except Exception as err:  # keep inferring; report what broke
                self._report(f"inference step failed: {type(err).__name__}: {err}")

    def step(self) -> None:
        """One pass: take a pending model, run everything queued, publish the newest pose."""
        with self._lock:
            pending = self._pending
            chunks = list(self._queue)
            self._queue.clear()
            self._queued_samples = 0
        if pending is not None:
            error = None
            try:
                self.install(pending)
            except Exception as err:  # the old model keeps running
                error = f"{type(err).__name__}: {err}"
            with self._lock:
                if self._pending is pending:
                    self._pending, self._swap_error = None, error
                self._swapped.notify_all()
        model, history = self._model, self._history
        if model is None or history is None:
            return
        predictor = model.predictor
        newest = None
        t0 = time.perf_counter()
        for c in chunks:
            if c.reset:
                predictor.reset()
                history.clear()
                self._filter.reset()
                self._last_published_index = None
            history.push(c.samples, c.first_index, c.stamp_ns, c.rate_hz)
            self._stamps.append((c.first_index, c.stamp_ns, c.rate_hz))
            try:
                prediction = predictor.push(c.samples, first_sample_index=c.first_index)
            except ValueError as err:  # the guard already filters these; keep running
                self._report(f"inference refused a chunk: {err}")
                predictor.reset()
                continue
            if prediction is not None:
                newest = prediction
        if newest is None or newest.joint_angles is None:
            return
        self._inference_ms.add((time.perf_counter() - t0) * 1e3)
        index = newest.stream_index
        if index is None or index == self._last_published_index:
            return
        stamp_ns = self._stamp_of(index)
        if stamp_ns is None:
            return
        self._last_published_index = index
        q = clamp_to_limits(np.asarray(newest.joint_angles, dtype=np.float64))
        if self._smoothing.enabled:
            q = clamp_to_limits(self._filter(q, stamp_ns * 1e-9))
        self._publish(Pose(q, forward_kinematics(q), stamp_ns))
        self._latency_ms.add((self._now_ns() - stamp_ns) * 1e-6)
        with self._lock:
            self._counts["published"] += 1

    def _stamp_of(self, index: int) -> int | None:
        for first, stamp, rate in reversed(self._stamps):
            if first <= index:
                return stamp + int(round((index - first) * 1e9 / rate))
        return None

    # --- diagnostics -------------------------------------------------------------------------
    def snapshot(self) -> Stats:
        """Counters for diagnostics; chunks, samples and published restart from zero."""
        now = time.monotonic()
        with self._lock:
            counts = dict(self._counts)
            for key in ("chunks", "samples", "published"):
                self._counts[key] = 0
            faults = dict(self._faults)
        seconds = max(now - self._stats_t0, 1e-6)
        self._stats_t0 = now
        return Stats(seconds, counts["chunks"], counts["samples"], counts["published"],
                     counts["no_model"], counts["malformed"], counts["queue_overflow"], faults,
                     self._inference_ms.summary(), self._latency_ms.summary())
