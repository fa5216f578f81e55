"""Confine file paths to a run's workspace folder.

A path is accepted only when it is relative, has no ``..`` part, and — after every symlink is
resolved — still lies inside the workspace. Everything else is refused with a message that
says why, which the model reads as the tool's error.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from axo.errors import ToolDenied


def confine(workspace: str | os.PathLike[str], path: str) -> Path:
    """The real path of ``path`` inside ``workspace``.

    Raises:
        ToolDenied: absolute paths, ``..`` parts, and symlinks that lead outside.
    """
    if not path or not path.strip():
        raise ToolDenied("an empty path names nothing; give a path relative to the workspace")
    if "\x00" in path:
        raise ToolDenied("a path may not contain NUL characters")
    if os.path.isabs(path) or path.startswith("~"):
        raise ToolDenied(f"'{path}' is absolute; paths are relative to the workspace")
    if ".." in PurePosixPath(path.replace("\\", "/")).parts:
        raise ToolDenied(f"'{path}' climbs out with '..'; stay inside the workspace")
    root = Path(workspace).resolve()
    real = (root / path).resolve()
    if real != root and root not in real.parents:
        raise ToolDenied(f"'{path}' leads outside the workspace through a symlink")
    return real


def relative(workspace: str | os.PathLike[str], real: Path) -> str:
    return str(real.relative_to(Path(workspace).resolve())) or "."
