"""``git_diff.patch`` of a dirty checkout: the tracked changes, cut at a limit; nothing outside a checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from experiments.rerun import git_drifts
from experiments.runner import write_git_diff


def _git(root: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(root), *arguments], check=True, capture_output=True)


def _checkout(root: Path) -> Path:
    root.mkdir()
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.org")
    _git(root, "config", "user.name", "t")
    (root / "code.py").write_text("x = 1\n")
    _git(root, "add", "code.py")
    _git(root, "commit", "-qm", "start")
    return root


def test_the_diff_of_tracked_changes_is_saved(tmp_path):
    root = _checkout(tmp_path / "repo")
    (root / "code.py").write_text("x = 2\n")
    (root / "untracked.bin").write_text("data\n")
    assert write_git_diff(tmp_path / "git_diff.patch", root=root)
    patch = (tmp_path / "git_diff.patch").read_text()
    assert patch.startswith("diff --git a/code.py b/code.py") and "-x = 1\n+x = 2\n" in patch
    assert "untracked.bin" not in patch


def test_a_large_diff_is_cut_at_a_line_with_a_note(tmp_path):
    root = _checkout(tmp_path / "repo")
    (root / "code.py").write_text("".join(f"y{i} = {i}\n" for i in range(2000)))
    assert write_git_diff(tmp_path / "git_diff.patch", root=root, limit_bytes=1000)
    data = (tmp_path / "git_diff.patch").read_bytes()
    assert len(data) < 1100
    body, note = data.rstrip(b"\n").rsplit(b"\n", 1)
    assert note.startswith(b"# alsweep: diff cut at 1000 of ")
    # cut at a line end: the last kept line is a whole added line
    assert re.fullmatch(rb"\+y(\d+) = \1", body.rsplit(b"\n", 1)[1])


def test_outside_a_checkout_nothing_is_written(tmp_path):
    (tmp_path / "plain").mkdir()
    assert not write_git_diff(tmp_path / "git_diff.patch", root=tmp_path / "plain")
    assert not (tmp_path / "git_diff.patch").exists()


def test_the_rerun_says_in_one_line_whether_the_dirty_diff_was_saved(tmp_path):
    patch = tmp_path / "git_diff.patch"
    patch.write_text("diff --git a/a.py b/a.py\n-1\n+2\ndiff --git a/b.py b/b.py\n-1\n+2\n")
    tags = {"git_commit": "0" * 40, "git_dirty": "true"}
    (saved,) = [d for d in git_drifts(tags, patch) if d.key == "git_dirty"]
    assert "uncommitted changes to 2 file(s), saved as its git_diff.patch artifact" in saved.line()
    (unsaved,) = [d for d in git_drifts(tags, None) if d.key == "git_dirty"]
    assert unsaved.line().endswith("(the recorded uncommitted changes were not saved)")
