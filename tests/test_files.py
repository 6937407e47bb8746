"""write_atomically: a reader sees the old file or the new one, and a failed write leaves no
temporary file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from stageless.files import write_atomically


def test_replaces_the_file_and_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_a_failed_replace_raises_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()  # a directory where the file should go: os.replace fails
    (target / "inside").write_bytes(b"kept")
    with pytest.raises(OSError):  # IsADirectoryError on Linux
        write_atomically(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
    assert (target / "inside").read_bytes() == b"kept"


def test_a_directory_that_cannot_be_made_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(OSError):
        write_atomically(blocker / "sub" / "state.json", b"new")
    assert blocker.read_bytes() == b"x"
