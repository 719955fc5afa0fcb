"""Real git repositories for tests: bare remotes seeded with a commit, and readers of what was pushed."""

from __future__ import annotations

import subprocess
from pathlib import Path

IDENTITY = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    ).stdout


def bare_repo(root: Path, name: str = "demo", files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A bare repository with one commit on `branch` holding `files`."""
    bare = root / f"{name}.git"
    git("init", "--quiet", "--bare", "-b", branch, str(bare))
    work = root / f"{name}-seed"
    git("init", "--quiet", "-b", branch, str(work))
    for path, text in (files or {"README.md": "hello\n"}).items():
        target = work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git("add", "-A", cwd=work)
    git(*IDENTITY, "commit", "--quiet", "-m", "initial", cwd=work)
    git("push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
    return bare


def show(bare: Path, ref: str, path: str) -> str:
    return git("--git-dir", str(bare), "show", f"{ref}:{path}")


def branches(bare: Path) -> list[str]:
    out = git("--git-dir", str(bare), "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return out.split()


def rev(bare: Path, ref: str) -> str:
    return git("--git-dir", str(bare), "rev-parse", ref).strip()
