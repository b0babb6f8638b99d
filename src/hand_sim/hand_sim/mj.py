"""The one place that imports MuJoCo: ``from hand_sim.mj import mujoco``.

Offscreen rendering needs an OpenGL backend chosen before MuJoCo is first imported:
``MUJOCO_GL=egl`` (headless; Mesa's EGL renders on the CPU where there is no GPU) unless
the environment sets another. If importing MuJoCo with that backend fails (no EGL/GL
library), it is imported again with rendering disabled, so the physics still runs;
:data:`GL_PROBLEM` then says why there is no picture.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
GL_BACKEND = os.environ["MUJOCO_GL"]
GL_PROBLEM: str | None = None
"""None, or why offscreen rendering is unavailable (the renderer checks this first)."""

try:
    import mujoco
except ImportError:
    raise
except Exception as exc:  # PyOpenGL fails with AttributeError/OSError where GL is missing
    GL_PROBLEM = f"MUJOCO_GL={GL_BACKEND}: {type(exc).__name__}: {exc}"
    for name in [m for m in sys.modules if m.split(".")[0] in ("mujoco", "OpenGL")]:
        del sys.modules[name]
    os.environ["MUJOCO_GL"] = "disable"
    import mujoco

__all__ = ["GL_BACKEND", "GL_PROBLEM", "mujoco"]
