"""Model names for the save/load services: plain names inside one models directory.

A name is 1-64 characters of letters, digits, ``_``, ``-`` and ``.``, starting with a letter
or digit, without ``..``; anything else (``../x``, ``/abs``, ``a/b``, spaces, control
characters) is refused, so a service call can never read or write outside the directory.
"""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a plain model name; raise ValueError saying why not."""
    if not isinstance(name, str) or not name:
        raise ValueError("model name is empty")
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit, no '..' and no path separators")
    return name


def model_path(models_dir: str | Path, name: str, suffix: str) -> Path:
    """The checkpoint file for ``name`` inside ``models_dir`` (which need not exist yet)."""
    validate_model_name(name)
    base = Path(models_dir).expanduser().resolve()
    stem = name[: -len(suffix)] if suffix and name.endswith(suffix) else name
    path = base / f"{stem}{suffix}"  # not resolved: an installed model may be a symlink
    if path.parent != base or path.name in (".", ".."):  # defence in depth (the pattern
        raise ValueError(f"model name {name!r} leaves the models directory")  # excludes it)
    return path
