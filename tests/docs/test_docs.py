"""The configuration reference names every setting, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from vteam.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_reference_lists_every_setting() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`VTEAM_{name.upper()}`" not in text]
    assert missing == []
