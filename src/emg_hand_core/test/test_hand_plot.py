"""emg_hand_core.hand_plot (the pure drawing module hand_render and the training report use)."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from emg_hand_core.hand_model import forward_kinematics
from emg_hand_core.hand_plot import Series, comparison_figure, draw_hand, frame_times
from emg_hand_core.poses import NAMED_POSES


def steps(names, per=20, dt=0.05):
    q = np.vstack([np.repeat(NAMED_POSES[n][None], per, 0) for n in names])
    return Series(np.arange(len(q)) * dt, q, "reference")


def test_frames_are_taken_at_distinct_poses_in_time_order():
    names = ["rest", "rest", "fist", "rest", "open", "rest", "pinch", "rest"]
    s = steps(names)
    times = frame_times([s], 4)
    assert np.all(np.diff(times) > 0)
    shown = {min(NAMED_POSES, key=lambda n: np.abs(NAMED_POSES[n] - s.nearest(t)).sum())
             for t in times}
    assert shown == {"rest", "fist", "open", "pinch"}


def test_more_frames_than_distinct_poses_still_gives_that_many_times():
    times = frame_times([steps(["fist"])], 3)
    assert len(times) == 3 and len(set(times)) == 3


def test_series_checks_shapes():
    with pytest.raises(ValueError, match=r"\(N, 20\)"):
        Series(np.zeros(3), np.zeros((3, 19)))
    with pytest.raises(ValueError, match="times"):
        Series(np.zeros(2), np.zeros((3, 20)))
    with pytest.raises(ValueError, match="no poses"):
        Series(np.zeros(0), np.zeros((0, 20)))


def render(fig) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(float) / 255.0


def test_one_series_alone_and_keypoints_input_draw():
    ref = steps(["open", "fist"])
    img = render(comparison_figure(None, ref, n_frames=2, width_in=6, dpi=50))
    assert img.shape == (165, 300, 3) and (img.min(axis=2) < 0.9).mean() > 0.02
    with pytest.raises(ValueError, match="nothing to draw"):
        comparison_figure(None, None)
    fig = comparison_figure(ref, None, n_frames=1, width_in=6, dpi=50)
    ax = fig.axes[0]
    n_lines = len(ax.lines)
    draw_hand(ax, forward_kinematics(NAMED_POSES["pinch"]), color="k",
              confidence=np.linspace(0, 1, 21))
    assert len(ax.lines) > n_lines


def test_prediction_and_reference_draw_differently_when_they_differ():
    ref = steps(["open", "fist"])
    same = render(comparison_figure(ref, ref, n_frames=2, width_in=6, dpi=50))
    other = render(comparison_figure(steps(["fist", "open"]), ref, n_frames=2, width_in=6,
                                     dpi=50))
    top = slice(0, same.shape[0] // 2)
    assert (np.abs(same[top] - other[top]).max(axis=2) > 0.2).mean() > 0.005
