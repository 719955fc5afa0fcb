"""Which URLs may reach an `href`: a stored or reported URL becomes a link only if it is a plain web address,
so that a `javascript:` or `data:` URL written by a runner, a forge or a tenant can never run on vTeam's origin."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MAX_LINK_LENGTH = 2048
"""Longest URL kept as a link; forges' pull-request URLs are far shorter."""

SCHEMES = frozenset({"http", "https"})
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\]|\s")
"""Control characters, whitespace (browsers strip some of them before reading the scheme) and backslashes
(which browsers read as slashes, so `https:\\\\evil` is not what it looks like)."""


def link_problem(url: str) -> str | None:
    """Why `url` may not become a link, or None when it may."""
    if not url:
        return "is empty"
    if len(url) > MAX_LINK_LENGTH:
        return f"is longer than {MAX_LINK_LENGTH} characters"
    if _UNSAFE.search(url):
        return "holds whitespace, a control character or a backslash"
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number is a malformed URL
    except ValueError:
        return "is not a well-formed URL"
    if parts.scheme.lower() not in SCHEMES:
        return "is not an http or https URL"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.password is not None:
        return "carries a user name or password"
    return None


def is_safe_link(url: object) -> bool:
    """True when `url` is a string that may be put in an `href` as is."""
    return isinstance(url, str) and link_problem(url) is None


def check_link(url: str, what: str = "URL") -> str:
    """`url` unchanged if it may become a link; else ValueError saying why (pydantic validators use it)."""
    problem = link_problem(url)
    if problem is not None:
        raise ValueError(f"{what} {problem}: only http and https URLs with a host become links")
    return url
