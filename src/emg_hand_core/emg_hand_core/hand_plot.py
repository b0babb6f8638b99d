"""Drawing the hand with matplotlib: hand frames from 21 keypoints and joint-angle traces.

Pure numpy + matplotlib (no rclpy, no pyplot state): the ``hand_render`` command of
hand_visualizer and the training report of emg_pose_node both draw with it. Figures are
:class:`matplotlib.figure.Figure` objects rendered with the Agg canvas, so nothing needs a
display.

Conventions: joint angles (..., 20) [rad] in :data:`hand_model.JOINT_NAMES` order, keypoints
(..., 21, 3) [m] in ``hand_base``, times [s].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .hand_model import (
    BONES,
    FINGERS,
    JOINT_NAMES,
    KEYPOINT_NAMES,
    NUM_JOINTS,
    NUM_KEYPOINTS,
    forward_kinematics,
)

PREDICTION_COLOR = "#d62728"
REFERENCE_COLOR = "#7f7f7f"
FINGER_COLORS = {
    "thumb": "#1f77b4",
    "index": "#ff7f0e",
    "middle": "#2ca02c",
    "ring": "#9467bd",
    "pinky": "#8c564b",
}

# Viewing direction of the hand frames: from the little-finger side, above the back of the
# hand and ahead of the fingertips, so that both flexion (x-z) and abduction (x-y) show.
DEFAULT_ELEVATION_DEG = 25.0
DEFAULT_AZIMUTH_DEG = -60.0


@dataclass(frozen=True)
class Series:
    """A time series of hand poses: times (N,) [s] and joint angles (N, 20) [rad]."""

    t: np.ndarray
    q: np.ndarray
    label: str = ""

    def __post_init__(self) -> None:
        t = np.asarray(self.t, dtype=np.float64)
        q = np.asarray(self.q, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != NUM_JOINTS:
            raise ValueError(f"{self.label or 'series'}: joint angles must be (N, {NUM_JOINTS}), "
                             f"got {q.shape}")
        if t.shape != (q.shape[0],):
            raise ValueError(f"{self.label or 'series'}: {t.shape[0] if t.ndim else 0} times "
                             f"for {q.shape[0]} poses")
        if q.shape[0] == 0:
            raise ValueError(f"{self.label or 'series'}: no poses")
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "q", q)

    def nearest(self, time_s: float) -> np.ndarray:
        """The pose (20,) whose time is closest to ``time_s``."""
        return self.q[int(np.argmin(np.abs(self.t - time_s)))]


def _keypoints(pose: np.ndarray) -> np.ndarray:
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape == (NUM_JOINTS,):
        return forward_kinematics(pose)
    if pose.shape == (NUM_KEYPOINTS, 3):
        return pose
    raise ValueError(f"expected 20 joint angles or (21, 3) keypoints, got shape {pose.shape}")


def _finger_of_bone(a: int, b: int) -> str | None:
    name = KEYPOINT_NAMES[b]
    finger = name.split("_", 1)[0]
    if KEYPOINT_NAMES[a] != "wrist" and KEYPOINT_NAMES[a].split("_", 1)[0] != finger:
        return None  # a palm bone across fingers
    return finger if finger in FINGERS else None


def draw_hand(
    ax,
    pose: np.ndarray,
    *,
    color: str | None = None,
    alpha: float = 1.0,
    linestyle: str = "-",
    label: str | None = None,
    confidence: np.ndarray | None = None,
) -> None:
    """Draw one hand on a 3D axes.

    pose: 20 joint angles [rad] (drawn through forward kinematics) or (21, 3) keypoints [m].
    color: one colour for the whole hand; None colours each finger. confidence (21,) in
    [0, 1], when given, scales the joint markers (small = unsure).
    """
    kp = _keypoints(pose) * 1000.0  # mm read better on axes
    for a, b in BONES:
        finger = _finger_of_bone(a, b)
        c = color or FINGER_COLORS.get(finger or "", "#444444")
        ax.plot(kp[[a, b], 0], kp[[a, b], 1], kp[[a, b], 2], color=c, alpha=alpha,
                linestyle=linestyle, linewidth=2.0)
    sizes = 18.0 if confidence is None else 6.0 + 30.0 * np.clip(np.asarray(confidence), 0, 1)
    ax.scatter(kp[:, 0], kp[:, 1], kp[:, 2], s=sizes, color=color or "#222222", alpha=alpha,
               depthshade=False, label=label)


def _setup_hand_axes(ax, title: str, elev: float, azim: float) -> None:
    ax.set_title(title, fontsize=9)
    # A fixed box around every reachable pose so frames compare at one scale [mm].
    ax.set_xlim(-5, 195)
    ax.set_ylim(-70, 120)
    ax.set_zlim(-115, 35)
    ax.set_box_aspect((200, 190, 150), zoom=1.15)
    ax.view_init(elev=elev, azim=azim)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    ax.tick_params(length=0)


def frame_times(series: Sequence[Series], n_frames: int, candidates: int = 200) -> np.ndarray:
    """``n_frames`` times, in order, at which the hand looks most different.

    Farthest-point sampling in joint space over ``candidates`` evenly spaced times of the
    span the series share (of the first series when they do not overlap), on the first
    series' poses (pass the reference first to show what happened). Deterministic.
    """
    start = max(s.t[0] for s in series)
    end = min(s.t[-1] for s in series)
    if end < start:  # no overlap: use the first series alone
        start, end = series[0].t[0], series[0].t[-1]
    grid = np.linspace(start, end, max(candidates, n_frames))
    poses = np.array([series[0].nearest(t) for t in grid])
    return grid[most_different(poses, n_frames)]


def most_different(poses: np.ndarray, n_frames: int) -> np.ndarray:
    """Indices (sorted) of ``n_frames`` of ``poses`` (M, any joints) that differ most:
    farthest-point sampling from the pose farthest from the average. Deterministic."""
    poses = np.asarray(poses, dtype=np.float64)
    chosen = [int(np.argmax(np.linalg.norm(poses - poses.mean(axis=0), axis=1)))]
    dist = np.linalg.norm(poses - poses[chosen[0]], axis=1)
    while len(chosen) < n_frames:
        k = int(np.argmax(dist))
        if dist[k] <= 1e-9:  # fewer distinct poses than frames: spread the rest in time
            rest = [i for i in np.linspace(0, len(poses) - 1, n_frames, dtype=int)
                    if i not in chosen]
            chosen += rest[: n_frames - len(chosen)]
            break
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(poses - poses[k], axis=1))
    return np.sort(np.asarray(chosen[:n_frames]))


def plot_hand_frames(
    fig: Figure,
    subplot_spec,
    times_s: Sequence[float],
    predicted: Series | None,
    reference: Series | None,
    *,
    elev: float = DEFAULT_ELEVATION_DEG,
    azim: float = DEFAULT_AZIMUTH_DEG,
) -> list:
    """A row of 3D hand frames at ``times_s``: predicted (solid) over reference (dashed)."""
    grid = subplot_spec.subgridspec(1, len(times_s), wspace=0.0)
    axes = []
    for k, t in enumerate(times_s):
        ax = fig.add_subplot(grid[0, k], projection="3d")
        if reference is not None:
            draw_hand(ax, reference.nearest(t), color=REFERENCE_COLOR, alpha=0.8,
                      linestyle="--", label=reference.label or "reference")
        if predicted is not None:
            draw_hand(ax, predicted.nearest(t), color=PREDICTION_COLOR,
                      label=predicted.label or "predicted")
        _setup_hand_axes(ax, f"t = {t:.2f} s", elev, azim)
        axes.append(ax)
    if axes:
        axes[0].legend(loc="upper left", fontsize=7, frameon=False)
    return axes


def plot_joint_traces(
    fig: Figure,
    subplot_spec,
    predicted: Series | None,
    reference: Series | None,
    *,
    marks_s: Sequence[float] = (),
) -> list:
    """One panel per finger with its 4 joint angles [rad]: predicted solid, reference dashed."""
    grid = subplot_spec.subgridspec(1, len(FINGERS), wspace=0.25)
    axes = []
    for k, finger in enumerate(FINGERS):
        ax = fig.add_subplot(grid[0, k], sharey=axes[0] if axes else None)
        joints = [i for i, name in enumerate(JOINT_NAMES) if name.startswith(finger + "_")]
        for n, j in enumerate(joints):
            c = f"C{n}"
            short = JOINT_NAMES[j][len(finger) + 1:]
            if reference is not None:
                ax.plot(reference.t, reference.q[:, j], color=c, linestyle="--", linewidth=1.0,
                        alpha=0.8)
            if predicted is not None:
                ax.plot(predicted.t, predicted.q[:, j], color=c, linewidth=1.2, label=short)
            elif reference is not None:
                ax.lines[-1].set_label(short)
        for t in marks_s:
            ax.axvline(t, color="#bbbbbb", linewidth=0.8, zorder=0)
        ax.set_title(finger, fontsize=9)
        ax.set_xlabel("time [s]", fontsize=8)
        if k == 0:
            ax.set_ylabel("angle [rad]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="upper right", frameon=False)
        axes.append(ax)
    return axes


def comparison_figure(
    predicted: Series | None,
    reference: Series | None = None,
    *,
    n_frames: int = 4,
    title: str | None = None,
    width_in: float = 12.0,
    dpi: float = 100.0,
) -> Figure:
    """Predicted vs reference hand: ``n_frames`` hand frames on top, joint traces below.

    Either series may be None (drawing the other alone), not both.
    """
    series = [s for s in (predicted, reference) if s is not None]
    if not series:
        raise ValueError("nothing to draw: give a predicted or a reference series")
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    fig = Figure(figsize=(width_in, width_in * 0.55), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(1.25, 1.0), hspace=0.15)
    times = frame_times([s for s in (reference, predicted) if s is not None], n_frames)
    plot_hand_frames(fig, grid[0], times, predicted, reference)
    plot_joint_traces(fig, grid[1], predicted, reference, marks_s=times)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.93 if title else 0.97, bottom=0.08)
    return fig


def save_comparison_png(
    path: str | Path,
    predicted: Series | None,
    reference: Series | None = None,
    **kwargs,
) -> Path:
    """Render :func:`comparison_figure` to a PNG file; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = comparison_figure(predicted, reference, **kwargs)
    fig.savefig(path, format="png")
    return path
