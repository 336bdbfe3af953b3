"""A second source tree for an A/B run in one job: a git worktree of the base revision."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
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


def default_base(explicit: str | None = None, *, environ: Mapping[str, str] | None = None, root: Path = ROOT) -> str:
    """The revision a head-vs-base comparison measures as the base.

    `explicit` (--base) if given, else $BASE, else HEAD when the working tree
    has changes (tracked or untracked, .gitignore respected: the tree is then
    what is being proposed against HEAD), else HEAD~1 (a clean tree is HEAD
    itself: compare it with its parent)."""
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    if env.get("BASE"):
        return env["BASE"]
    done = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RevisionError(f"git status failed in {root}: {done.stderr.strip()}")
    return "HEAD" if done.stdout.strip() else "HEAD~1"
