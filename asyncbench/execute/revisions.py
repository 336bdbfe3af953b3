"""A second source tree for an A/B run in one job: a git worktree of the base revision."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asyncbench.execute import ROOT


class RevisionError(Exception):
    """The base revision could not be checked out."""


def _remove(worktree: Path, root: Path) -> None:
    # --force: the servers may have left caches (__pycache__) in the tree
    subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=root, check=False)


@contextmanager
def worktree(revision: str, *, root: Path = ROOT) -> Iterator[Path]:
    """Check `revision` out beside the working tree (var/ab-base) for the
    duration of the block, and remove it afterwards. A tree left by an earlier,
    killed run is removed first."""
    path = root / "var" / "ab-base"
    if path.exists():
        _remove(path, root)
        shutil.rmtree(path, ignore_errors=True)
    done = subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), revision],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RevisionError(f"cannot check out {revision!r}: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _remove(path, root)
