"""Give each test process a ROS domain of its own.

DDS participants in the same ROS_DOMAIN_ID discover each other, so two test runs on one
machine (two CI jobs, a developer's run beside CI) would see each other's topics. Each test
process takes a domain in 1..232 by holding an exclusive lock on a file named after it; the
lock dies with the process. Discovery is limited to this machine
(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

MAX_DOMAIN_ID = 232  # 233 and above fail with Fast DDS's default port mapping
_LOCK_DIR = Path(tempfile.gettempdir()) / "emg_hand_ros_domains"
_held: dict[int, int] = {}  # domain id -> open lock file descriptor


def acquire_domain_id() -> int:
    """Lock and return a free ROS domain id in 1..232 for the life of this process."""
    if _held:
        return next(iter(_held))
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % MAX_DOMAIN_ID
    for offset in range(MAX_DOMAIN_ID):
        domain = 1 + (start + offset) % MAX_DOMAIN_ID
        fd = os.open(_LOCK_DIR / f"{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held[domain] = fd
        return domain
    raise RuntimeError(f"all ROS domains 1..{MAX_DOMAIN_ID} are held by other test processes")


def isolate_ros_domain(environ: dict[str, str] | None = None) -> int:
    """Set ROS_DOMAIN_ID and localhost-only discovery in ``environ`` (default os.environ)."""
    env = os.environ if environ is None else environ
    domain = acquire_domain_id()
    env["ROS_DOMAIN_ID"] = str(domain)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy; warns if set
    return domain
