"""Pictures of the simulated hand without a display: MuJoCo's offscreen renderer.

``MUJOCO_GL=egl`` by default (:mod:`hand_sim.mj`): headless, on a GPU or on the CPU through
Mesa's EGL. Where no GL backend works the physics is unaffected and :func:`gl_problem`
says why there is no picture; :class:`HandRenderer` raises :class:`RenderUnavailable` with
that reason.

``hand_sim_render BAG -o robot_hand.png --gif robot_hand.gif`` draws a recorded run: the
robot hand's measured joint states (``robot_hand/joint_states``, as hand_sim published
them) put back on the model (the coupled joints at their linkage ratio), with the scene
object: a PNG of the frames where the hand looks most different, and an animated GIF.
Pure (MuJoCo, numpy, Pillow); no rclpy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import mj
from .mj import mujoco
from .model import SimModel

DEFAULT_SIZE = (480, 360)  # width, height [px]
# The camera at body scale 1: looking at the fingers from the thumb side, below the palm
CAMERA_LOOKAT_M = np.array([0.10, 0.0, -0.035])
CAMERA_DISTANCE_M = 0.25
CAMERA_AZIMUTH_DEG, CAMERA_ELEVATION_DEG = 200.0, -18.0


class RenderUnavailable(RuntimeError):
    """No offscreen OpenGL here; the message says why (physics still works)."""


def gl_problem() -> str | None:
    """None where offscreen rendering can work, else why not (no backend imported)."""
    if mj.GL_PROBLEM:
        return mj.GL_PROBLEM
    if not hasattr(mujoco, "Renderer") or mj.GL_BACKEND in ("disable", "disabled", "off"):
        return f"MuJoCo rendering is disabled (MUJOCO_GL={mj.GL_BACKEND})"
    return None


class HandRenderer:
    """Renders a :class:`SimModel` at given joint positions, or a running sim's data."""

    def __init__(self, sim_model: SimModel, width: int = DEFAULT_SIZE[0],
                 height: int = DEFAULT_SIZE[1]):
        problem = gl_problem()
        if problem:
            raise RenderUnavailable(problem)
        self.sm = sim_model
        try:
            self.renderer = mujoco.Renderer(sim_model.model, height=height, width=width)
        except Exception as exc:  # no EGL device / display: the context cannot be made
            raise RenderUnavailable(f"cannot create an offscreen GL context "
                                    f"(MUJOCO_GL={mj.GL_BACKEND}): {exc}") from exc
        self.data = mujoco.MjData(sim_model.model)
        s = sim_model.profile.body_scale
        self.camera = mujoco.MjvCamera()
        self.camera.lookat[:] = CAMERA_LOOKAT_M * s
        self.camera.distance = CAMERA_DISTANCE_M * s
        self.camera.azimuth, self.camera.elevation = CAMERA_AZIMUTH_DEG, CAMERA_ELEVATION_DEG

    def close(self) -> None:
        self.renderer.close()

    def render_data(self, data) -> np.ndarray:
        """An RGB image (height, width, 3) uint8 of ``data`` (e.g. a HandSim's)."""
        self.renderer.update_scene(data, camera=self.camera)
        return self.renderer.render().copy()

    def render(self, positions: np.ndarray) -> np.ndarray:
        """An RGB image of the hand at the profile joints' ``positions`` [rad]."""
        q = np.asarray(positions, dtype=np.float64)
        self.data.qpos[self.sm.qpos_adr] = q
        for qadr, driver, ratio in self.sm.coupled:
            self.data.qpos[qadr] = ratio * q[driver]
        mujoco.mj_forward(self.sm.model, self.data)
        return self.render_data(self.data)


# --- a recorded run: hand_sim_render ---------------------------------------------------------

def read_states(bag: str | Path, joint_names, topic: str) -> tuple[np.ndarray, np.ndarray]:
    """(times (M,) [s] from the first, positions (M, n) [rad]) of the robot hand's
    JointState topic ``topic`` (any namespace) in a rosbag2 (DataError if there is none)."""
    from emg_hand_core.recordings import DataError
    from emg_hand_core.recordings.rosbag2 import read_joint_tracks

    track = read_joint_tracks(bag, [topic], joint_names).get(topic)
    if track is None or not len(track.stamps_ns):
        raise DataError(f"{bag}: no {topic} with the joints {', '.join(joint_names)}")
    return (track.stamps_ns - track.stamps_ns[0]) * 1e-9, track.angles


def frames_over_time(t: np.ndarray, q: np.ndarray, fps: float,
                     max_frames: int) -> np.ndarray:
    """Poses (K, n) at ``fps`` over the last ``max_frames / fps`` seconds of the run."""
    times = np.arange(max(t[0], t[-1] - max_frames / fps), t[-1], 1.0 / fps)
    index = np.clip(np.searchsorted(t, times), 0, len(t) - 1)
    return q[index]


def save_png(images: list[np.ndarray], path: str | Path) -> None:
    from PIL import Image

    Image.fromarray(np.concatenate(images, axis=1)).save(path)


def save_gif(images: list[np.ndarray], path: str | Path, fps: float) -> None:
    from PIL import Image

    frames = [Image.fromarray(img).quantize(colors=128) for img in images]
    frames[0].save(path, save_all=True, append_images=frames[1:], loop=0,
                   duration=int(round(1000.0 / fps)), optimize=True)


def main(argv: list[str] | None = None) -> int:
    """Console script ``hand_sim_render``: PNG (and GIF) of a recorded simulated hand."""
    from emg_hand_core.hand_plot import most_different
    from emg_hand_core.recordings import DataError
    from emg_hand_core.topics import ROBOT_JOINT_STATES_TOPIC
    from hand_controller.profile import ProfileError, load_profile, resolve_profile_path

    from .model import SceneObject, build_model

    parser = argparse.ArgumentParser(
        prog="hand_sim_render", description="Draw the simulated robot hand of a recorded run "
        "(its measured robot_hand/joint_states) offscreen: a PNG of the most different "
        "frames, optionally an animated GIF.")
    parser.add_argument("bag", help="rosbag2 folder (or its .mcap/.db3 file)")
    parser.add_argument("-o", "--output", default="robot_hand.png", help="PNG to write")
    parser.add_argument("--gif", help="also write this animated GIF")
    parser.add_argument("--profile", default="prosthetic_6", help="the hand's profile")
    parser.add_argument("--topic", default=ROBOT_JOINT_STATES_TOPIC)
    parser.add_argument("--frames", type=int, default=4, help="frames in the PNG")
    parser.add_argument("--gif-seconds", type=float, default=4.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--scene-object", default="cylinder", choices=("cylinder", "ball",
                                                                       "none"))
    parser.add_argument("--size", type=int, nargs=2, default=DEFAULT_SIZE,
                        metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args(argv)
    problem = gl_problem()
    if problem:
        print(f"hand_sim_render: no picture: {problem}", file=sys.stderr)
        return 3
    try:
        profile = load_profile(resolve_profile_path(args.profile))
        t, q = read_states(args.bag, profile.joint_names, args.topic)
    except (ProfileError, DataError) as exc:
        print(f"hand_sim_render: {exc}", file=sys.stderr)
        return 1
    sim_model = build_model(profile, scene_object=SceneObject.in_front_of_palm(
        profile, args.scene_object))
    try:
        renderer = HandRenderer(sim_model, *args.size)
    except RenderUnavailable as exc:
        print(f"hand_sim_render: no picture: {exc}", file=sys.stderr)
        return 3
    try:
        picks = most_different(q, min(args.frames, len(q)))
        save_png([renderer.render(q[k]) for k in picks], args.output)
        written = [args.output]
        if args.gif:
            frames = frames_over_time(t, q, args.fps, int(args.gif_seconds * args.fps))
            save_gif([renderer.render(pose) for pose in frames], args.gif, args.fps)
            written.append(args.gif)
    finally:
        renderer.close()
    print(f"hand_sim_render: wrote {', '.join(written)} ({len(q)} states of "
          f"{profile.name})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
