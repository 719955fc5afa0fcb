"""Which agent frameworks are installed here, and which are still being installed.

`make run` starts the platform as soon as its own dependencies are in and installs the framework CLIs in the
background (`make frameworks`, holding `.agents/.install.lock`, writing `.agents/install.log`), so a framework can
be asked for before it is there. This module answers "can a session of framework X start now?" by looking where
the adapters look, and the lock says whether an install is still under way.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vteam.agents import codex, gemini, mini_swe

AGENTS = Path(__file__).resolve().parents[3] / ".agents"
"""Where `make frameworks` installs the CLIs: `.agents` beside the source tree (as in the image)."""
LOCK = ".install.lock"
"""Held (flock) by the background `make frameworks` while it runs."""
LOG = "install.log"
"""The background install's output: its progress, and why it failed if it did."""
NOT_INSTALLED = "not installed: run `make frameworks`"


@dataclass(frozen=True)
class Readiness:
    """Whether a framework's sessions can start now, and in a few words why not."""

    ready: bool
    status: str


READY = Readiness(True, "ready")


@dataclass(frozen=True)
class Installs:
    """The framework installs under `root`; `path` is the PATH searched for CLIs installed elsewhere (None: the
    process's own). Injectable so that a test can point it at a folder of its own."""

    root: Path = AGENTS
    path: str | None = None

    def readiness(self, framework: str) -> Readiness:
        """Ready when the adapter would find its CLI; else installing while the background install runs."""
        if self._found(framework):
            return READY
        if self.installing():
            return Readiness(False, f"installing (progress in {self.root / LOG})")
        if (self.root / LOG).is_file():
            return Readiness(False, f"{NOT_INSTALLED} (the last install's output is in {self.root / LOG})")
        return Readiness(False, NOT_INSTALLED)

    def all(self, frameworks: list[str]) -> dict[str, Readiness]:
        return {name: self.readiness(name) for name in frameworks}

    def installing(self) -> bool:
        """Whether a `make frameworks` holds the install lock now (a crashed one holds nothing)."""
        try:
            fd = os.open(self.root / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _found(self, framework: str) -> bool:
        if framework == codex.CodexAdapter.info.name:
            return self._cli("codex", codex.VERSION)
        if framework == gemini.GeminiAdapter.info.name:
            return self._cli("gemini", gemini.VERSION, stamp="gemini-cli")
        if framework == mini_swe.MiniSweAdapter.info.name:
            venv = self.root / "mini-swe-agent" / "bin" / "python"
            if venv.is_file():
                return self._settled(f".mini-swe-agent-{mini_swe.VERSION}")
            return importlib.util.find_spec("minisweagent") is not None
        return True  # script needs bash; Claude Code's CLI comes inside the claude-agent-sdk wheel

    def _cli(self, name: str, version: str, *, stamp: str | None = None) -> bool:
        installed = self.root / "node_modules" / ".bin" / name
        if installed.is_file() and os.access(installed, os.X_OK):
            return self._settled(f".{stamp or name}-{version}")
        return shutil.which(name, path=self.path) is not None

    def _settled(self, stamp: str) -> bool:
        """A CLI found while an install runs counts once its stamp is written: npm may still be filling it in."""
        return (self.root / stamp).is_file() or not self.installing()
