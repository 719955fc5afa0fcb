"""No form is forgotten: every POST form of every template carries the CSRF field, and every page the token
htmx sends, so a new form cannot ship that the web edge would refuse, or that would go unprotected."""

from __future__ import annotations

import re

import pytest

from vteam.web import assets

pytestmark = pytest.mark.integration

POST_FORM = re.compile(r"<form\b[^>]*method=\"post\"[^>]*>(.{0,40})", re.DOTALL | re.IGNORECASE)


def test_every_post_form_carries_the_csrf_field() -> None:
    forms = 0
    for template in sorted(assets.TEMPLATES.rglob("*.html")):
        for after in POST_FORM.findall(template.read_text()):
            forms += 1
            assert after.startswith("{{ csrf_field() }}"), f"{template.name}: a POST form without the CSRF field"
    assert forms >= 15, "the templates' POST forms were found"


def test_every_page_carries_the_token_for_htmx() -> None:
    base = (assets.TEMPLATES / "base.html").read_text()
    assert '<meta name="csrf-token" content="{{ csrf_value() }}">' in base
    assert "X-CSRF-Token" in (assets.STATIC / "app.js").read_text()
    for template in assets.TEMPLATES.glob("*.html"):
        if template.name != "base.html":
            assert template.read_text().startswith('{% extends "base.html" %}'), template.name
