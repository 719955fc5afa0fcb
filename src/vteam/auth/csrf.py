"""Per-browser-session CSRF tokens: an HMAC of the session cookie under the platform's key.

A page carries its session's token (a `<meta name="csrf-token">` and a hidden field in every form); a write
that the cookie authenticates must bring it back. A page on another origin can make the browser send the
cookie but can neither read the page nor compute the HMAC, so it cannot bring the token. Deriving the token
from the cookie needs no storage and no database look-up, and the token dies with the browser session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

FIELD = "csrf_token"
"""The form field, and the WebSocket query parameter, that carry the token."""
HEADER = "x-csrf-token"
"""The header htmx (app.js) and scripts send it in."""


PROXIED = ("x-forwarded-user", "x-forwarded-access-token")
"""Behind a proven OAuth proxy the browser's credential is the proxy's own cookie; the identity it forwards
stands in for vTeam's cookie (the proxy middleware has already dropped these headers from anyone else)."""


def subject(headers: Mapping[str, str], session_cookie: str | None) -> str | None:
    """What a browser's CSRF token is bound to: vTeam's session cookie, else the proven proxy's forwarded
    identity; None for a request that brings neither (bearer callers are never asked for a token)."""
    if session_cookie:
        return session_cookie
    for name in PROXIED:
        if value := headers.get(name, "").strip():
            return f"proxy:{name}:{value}"
    return None


class CsrfTokens:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"vteam-csrf-token\0" + key).digest()

    def for_session(self, cookie: str) -> str:
        """The token of the browser session whose cookie is `cookie`."""
        mac = hmac.new(self._key, hashlib.sha256(cookie.encode()).digest(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def valid(self, cookie: str, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.for_session(cookie).encode(), token.encode())
