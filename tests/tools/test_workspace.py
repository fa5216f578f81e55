from __future__ import annotations

import os
from pathlib import Path

import pytest

from axo.errors import ToolDenied
from axo.tools.workspace import confine


def test_a_relative_path_inside_the_workspace_is_accepted(tmp_path: Path) -> None:
    assert confine(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()


@pytest.mark.parametrize(
    "path, why",
    [
        ("../outside.txt", "climbs out"),
        ("a/../../x", "climbs out"),
        ("/etc/passwd", "absolute"),
        ("~/notes", "absolute"),
        ("", "empty path"),
    ],
)
def test_escapes_are_refused_with_a_reason(tmp_path: Path, path: str, why: str) -> None:
    with pytest.raises(ToolDenied, match=why):
        confine(tmp_path, path)


def test_a_symlink_that_leads_outside_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, ws / "link.txt")
    os.symlink(tmp_path, ws / "dirlink")
    with pytest.raises(ToolDenied, match="symlink"):
        confine(ws, "link.txt")
    with pytest.raises(ToolDenied, match="symlink"):
        confine(ws, "dirlink/secret.txt")


def test_a_symlink_that_stays_inside_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("r")
    os.symlink(tmp_path / "real.txt", tmp_path / "alias.txt")
    assert confine(tmp_path, "alias.txt") == (tmp_path / "real.txt").resolve()
