"""Hermetic tests: no VTEAM_* setting leaks in from the developer's shell."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_vteam_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("VTEAM_"):
            monkeypatch.delenv(key)
