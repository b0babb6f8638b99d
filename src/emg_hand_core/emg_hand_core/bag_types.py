"""Message types for reading and writing our bags with the rosbags library (no rclpy).

:func:`typestore` returns the rosbags ROS 2 Jazzy type store (std_msgs, sensor_msgs,
geometry_msgs, tf2_msgs, diagnostic_msgs, rosgraph_msgs, ...) with our own interface
messages (``emg_interfaces/msg/EMG``, ``HandKeypoints``, ``CalibrationPrompt``) registered
from their ``.msg`` files, so the same definitions the ROS nodes were generated from are the
ones embedded in a bag and used to decode it::

    from rosbags.highlevel import AnyReader
    from emg_hand_core.bag_types import typestore

    with AnyReader([bag_dir], default_typestore=typestore()) as reader:
        for connection, log_time_ns, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)

The ``.msg`` files are found through the ament index (the installed package's
``share/<pkg>/msg``), falling back to the source tree (``src/<pkg>/msg``) so that the trainer
can read bags from a plain checkout too. Used by the recording reader of bags
(:mod:`.recordings.rosbag2`) and by ``emg_hand_bag``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

# Interface packages of this workspace whose messages may appear in a bag.
OUR_INTERFACE_PACKAGES: tuple[str, ...] = ("emg_interfaces",)

# <repo>/src, when this module runs from the source tree (or a --symlink-install build).
_SRC_DIR = Path(__file__).resolve().parents[2]


def split_type_name(msgtype: str) -> tuple[str, str, str]:
    """``"pkg/msg/Name"`` -> ``("pkg", "msg", "Name")``; raises ValueError otherwise."""
    parts = msgtype.split("/")
    if len(parts) == 2:  # "pkg/Name", the ROS 1 / short form
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a ROS 2 message type name: {msgtype!r} (want pkg/msg/Name)")
    return parts[0], parts[1], parts[2]


def interface_dir(package: str, kind: str = "msg") -> Path | None:
    """Folder holding ``package``'s ``.msg`` files: installed share first, then ``src/``."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:  # a plain Python environment (the trainer's): the source tree only
        pass
    else:
        try:
            candidate = Path(get_package_share_directory(package)) / kind
        except (PackageNotFoundError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            candidate = None
        if candidate is not None and candidate.is_dir():
            return candidate
    candidate = _SRC_DIR / package / kind
    return candidate if candidate.is_dir() else None


def msg_types_from_dir(package: str, msg_dir: Path) -> dict:
    """Parse every ``<msg_dir>/*.msg`` into rosbags type definitions named pkg/msg/Name."""
    types: dict = {}
    for path in sorted(Path(msg_dir).glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"),
                                        f"{package}/msg/{path.stem}"))
    return types


def register_package(store: Typestore, package: str, msg_dir: Path | None = None) -> list[str]:
    """Register all messages of ``package`` in ``store``; return the type names added.

    Raises FileNotFoundError when the package's ``.msg`` files cannot be found.
    """
    folder = Path(msg_dir) if msg_dir is not None else interface_dir(package)
    if folder is None:
        raise FileNotFoundError(
            f"message definitions of {package!r} not found: neither an installed package "
            f"(ament index: share/{package}/msg) nor {_SRC_DIR / package / 'msg'}")
    types = msg_types_from_dir(package, folder)
    if not types:
        raise FileNotFoundError(f"no .msg files in {folder}")
    new = [name for name in types if name not in store.fielddefs]
    store.register(types)
    return new


def ensure_type(store: Typestore, msgtype: str) -> bool:
    """Make ``msgtype`` (and the types it uses) known to ``store``; False if not found.

    Looks the package up through the ament index (any installed interface package), so
    a bag can hold any message type whose definition is installed.
    """
    pending = [msgtype]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in store.fielddefs:
            try:
                package, _, type_name = split_type_name(name)
            except ValueError:
                return False
            folder = interface_dir(package)
            if folder is None or not (folder / f"{type_name}.msg").is_file():
                return False
            store.register(get_types_from_msg(
                (folder / f"{type_name}.msg").read_text(encoding="utf-8"),
                f"{package}/msg/{type_name}"))
        pending.extend(_field_types(store, name))
    return True


def _field_types(store: Typestore, msgtype: str) -> Iterable[str]:
    """Message type names used by the fields of ``msgtype`` (nested, arrays, sequences)."""
    _, fields = store.fielddefs[msgtype]
    for _, (node_type, spec) in fields:
        # (NAME, "pkg/msg/Type"), or (ARRAY|SEQUENCE, ((NAME, "pkg/msg/Type"), length))
        inner = spec[0] if node_type in (Nodetype.ARRAY, Nodetype.SEQUENCE) else (node_type, spec)
        if inner[0] == Nodetype.NAME:
            yield inner[1]


def typestore(packages: Iterable[str] = OUR_INTERFACE_PACKAGES) -> Typestore:
    """A new rosbags Jazzy type store with our interface messages registered.

    Each call returns a fresh store (callers may register more types into it).
    """
    store = get_typestore(Stores.ROS2_JAZZY)
    for package in packages:
        register_package(store, package)
    return store
