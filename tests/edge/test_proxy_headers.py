"""The proxy-trust filter on its own: which forwarded identity headers reach the app, and what is stripped."""

from __future__ import annotations

import asyncio
import base64

import pytest

from vteam.api.middleware import ProxyHeaders, proxy_secret, proxy_trust
from vteam.settings import Settings

SECRET = "s3cret-proof"
FORWARDED = [(b"x-forwarded-user", b"mallory"), (b"x-forwarded-groups", b"vteam-admins")]
LOOPBACK = ("127.0.0.1", 50000)


def _basic(password: str, user: str = "mallory") -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def _names(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    return {k for k, _ in headers}


async def _app(scope: object, receive: object, send: object) -> None:
    """Never called: the tests call `filter` directly."""


@pytest.mark.parametrize(
    "proof",
    [
        [],
        [(b"x-vteam-proxy-secret", b"guess")],
        [(b"authorization", _basic("guess"))],
        [(b"authorization", _basic(""))],
        [(b"authorization", b"Basic !!!")],
        [(b"authorization", b"Basic " + base64.b64encode(SECRET.encode()))],
        [(b"x-vteam-proxy-secret", b"guess"), (b"x-vteam-proxy-secret", SECRET.encode())],
    ],
    ids=["none", "wrong-header", "wrong-basic", "empty-basic", "garbled-basic", "basic-without-colon", "two-headers"],
)
def test_without_the_proof_identity_headers_are_dropped(proof: list[tuple[bytes, bytes]]) -> None:
    kept = ProxyHeaders(_app, secret=SECRET).filter(LOOPBACK, [*FORWARDED, *proof])
    assert not _names(kept) & {b"x-forwarded-user", b"x-forwarded-groups", b"x-vteam-proxy-secret"}


def test_the_secret_header_proves_the_proxy_and_is_stripped() -> None:
    kept = ProxyHeaders(_app, secret=SECRET).filter(LOOPBACK, [*FORWARDED, (b"X-Vteam-Proxy-Secret", SECRET.encode())])
    assert kept == FORWARDED


def test_the_basic_password_proves_the_proxy_and_its_credentials_are_stripped() -> None:
    kept = ProxyHeaders(_app, secret=SECRET).filter(LOOPBACK, [*FORWARDED, (b"authorization", _basic(SECRET))])
    assert kept == FORWARDED


def test_a_callers_bearer_token_is_left_alone() -> None:
    bearer = (b"authorization", b"Bearer vt_api_x")
    kept = ProxyHeaders(_app, secret=SECRET).filter(LOOPBACK, [*FORWARDED, bearer])
    assert kept == [bearer]


def test_an_address_allow_list_only_narrows_the_proof() -> None:
    proxy = ProxyHeaders(_app, secret=SECRET, allowed=frozenset({"10.1.2.3"}))
    proven = [*FORWARDED, (b"x-vteam-proxy-secret", SECRET.encode())]
    assert proxy.filter(("10.1.2.3", 1), proven) == FORWARDED
    assert proxy.filter(LOOPBACK, proven) == []
    assert proxy.filter(("10.1.2.3", 1), FORWARDED) == []


def test_no_secret_configured_trusts_no_one() -> None:
    kept = ProxyHeaders(_app, secret=None).filter(LOOPBACK, [*FORWARDED, (b"x-vteam-proxy-secret", b"")])
    assert kept == []


def test_settings_decide_the_trust_mode() -> None:
    assert proxy_secret(Settings(trust_proxy_headers=True)) is None
    assert proxy_secret(Settings(proxy_secret=SECRET)) is None, "the secret alone does not turn trust on"
    assert proxy_secret(Settings(trust_proxy_headers=True, proxy_secret=SECRET)) == SECRET
    assert "ignored" in proxy_trust(Settings())
    line = proxy_trust(Settings(trust_proxy_headers=True, proxy_secret=SECRET, trusted_proxies=""))
    assert "any address" in line
    assert SECRET not in line


def _seen(proxy_secret_sent: str | None) -> dict[str, object]:
    """The scope the app behind the middleware sees for a request with X-Forwarded-Proto/-For."""
    seen: dict[str, object] = {}

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen.update(scope)

    headers = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"203.0.113.9, 10.0.0.7")]
    if proxy_secret_sent is not None:
        headers.append((b"x-vteam-proxy-secret", proxy_secret_sent.encode()))
    scope = {"type": "http", "scheme": "http", "client": LOOPBACK, "headers": headers}
    asyncio.run(ProxyHeaders(app, secret=SECRET)(scope, None, None))  # type: ignore[arg-type]
    return seen


def test_scheme_and_client_address_come_only_from_a_proven_proxy() -> None:
    """uvicorn would take X-Forwarded-Proto/-For from anyone on loopback; here only the proxy may set them."""
    proven = _seen(SECRET)
    assert proven["scheme"] == "https"
    assert proven["client"] == ("10.0.0.7", 0), "the last address, the one the proxy itself added"
    anyone = _seen(None)
    assert anyone["scheme"] == "http"
    assert anyone["client"] == LOOPBACK
