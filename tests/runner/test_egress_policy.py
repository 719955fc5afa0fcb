"""The sandbox proxy's policy: what an agent may reach, decided without a network, one rule per row."""

from __future__ import annotations

import pytest

from vteam.runner.egress import Policy, allow_list, mirror_ports, parse_request, split_host_port

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:4700:4700::1111"
UNSPECIFIED = "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize(
    ("host", "addresses", "reason"),
    [
        ("example.com", [PUBLIC_V4], None),
        (PUBLIC_V6, [PUBLIC_V6], None),
        ("example.com", [PUBLIC_V4, PUBLIC_V6], None),
        ("127.0.0.1", ["127.0.0.1"], "a loopback address"),
        ("127.9.9.9", ["127.9.9.9"], "a loopback address"),
        ("::1", ["::1"], "a loopback address"),
        ("::ffff:7f00:1", ["::ffff:127.0.0.1"], "a loopback address"),
        ("localhost", ["127.0.0.1", "::1"], "127.0.0.1, a loopback address"),
        ("10.1.2.3", ["10.1.2.3"], "a private address"),
        ("172.16.0.1", ["172.16.0.1"], "a private address"),
        ("192.168.1.1", ["192.168.1.1"], "a private address"),
        ("fd00::1", ["fd00::1"], "a private address"),
        ("169.254.169.254", ["169.254.169.254"], "a link-local address"),
        ("fe80::1", ["fe80::1%eth0"], "a link-local address"),
        ("100.64.0.1", ["100.64.0.1"], "a shared (CGNAT) address"),
        ("100.127.255.254", ["100.127.255.254"], "a shared (CGNAT) address"),
        (UNSPECIFIED, [UNSPECIFIED], "the unspecified address"),
        ("::", ["::"], "the unspecified address"),
        ("224.0.0.1", ["224.0.0.1"], "a multicast address"),
        ("ff02::1", ["ff02::1"], "a multicast address"),
        ("240.0.0.1", ["240.0.0.1"], "a private address"),  # class E: reserved, and private to ipaddress
        ("rebind.example", [PUBLIC_V4, "10.0.0.7"], "10.0.0.7, a private address"),
        ("metadata.example", ["169.254.169.254"], "169.254.169.254, a link-local address"),
        ("nat64.example", ["64:ff9b::7f00:1"], "64:ff9b::7f00:1, a loopback address"),
        ("nowhere.example", [], "a name that does not resolve"),
    ],
)
def test_only_public_addresses_without_an_allow_list(host: str, addresses: list[str], reason: str | None) -> None:
    assert Policy().refusal(host, 443, addresses) == reason


def allowing(*entries: str, platform_port: int | None = None, platform_hosts: tuple[str, ...] = ()) -> Policy:
    return Policy(frozenset(split_host_port(e) for e in entries), platform_port, frozenset(platform_hosts))


@pytest.mark.parametrize(
    ("entries", "host", "port", "addresses", "allowed"),
    [
        (("gateway.lan",), "gateway.lan", 4000, ["10.0.0.5"], True),
        (("gateway.lan",), "gateway.lan", 22, ["10.0.0.5"], True),
        (("gateway.lan:4000",), "gateway.lan", 4000, ["10.0.0.5"], True),
        (("gateway.lan:4000",), "gateway.lan", 4001, ["10.0.0.5"], False),
        (("Gateway.LAN.:4000",), "gateway.lan", 4000, ["10.0.0.5"], True),
        (("gateway.lan",), "other.lan", 4000, ["10.0.0.5"], False),
        (("127.0.0.1:9000",), "127.0.0.1", 9000, ["127.0.0.1"], True),
        (("127.0.0.1:9000",), "127.0.0.1", 9001, ["127.0.0.1"], False),
        (("127.0.0.1:9000",), "localhost", 9000, ["127.0.0.1"], False),
        (("[::1]:9000",), "::1", 9000, ["::1"], True),
        (("[::1]:9000",), "::1", 9001, ["::1"], False),
        (("::1",), "::1", 9001, ["::1"], True),
        (("10.0.0.5",), "10.0.0.5", 443, ["10.0.0.5"], True),
    ],
)
def test_the_allow_list_names_a_host_or_a_host_and_port(
    entries: tuple[str, ...], host: str, port: int, addresses: list[str], allowed: bool
) -> None:
    assert (allowing(*entries).refusal(host, port, addresses) is None) is allowed


@pytest.mark.parametrize(
    ("host", "port", "addresses", "refused"),
    [
        ("127.0.0.1", 8080, ["127.0.0.1"], True),
        ("127.0.0.2", 8080, ["127.0.0.2"], True),
        ("::1", 8080, ["::1"], True),
        ("::ffff:127.0.0.1", 8080, ["::ffff:127.0.0.1"], True),
        (UNSPECIFIED, 8080, [UNSPECIFIED], True),
        ("localhost", 8080, ["127.0.0.1"], True),
        ("vteam.example", 8080, [PUBLIC_V4], True),
        ("the-machine.example", 8080, ["198.51.100.7"], True),
        ("127.0.0.1", 8081, ["127.0.0.1"], False),
        ("vteam.example", 443, [PUBLIC_V4], False),
        ("elsewhere.example", 8080, ["203.0.113.9"], False),
    ],
)
def test_the_platform_itself_is_refused_even_when_allowed(
    host: str, port: int, addresses: list[str], refused: bool
) -> None:
    policy = allowing(
        "127.0.0.1",
        "127.0.0.2",
        "::1",
        UNSPECIFIED,
        "localhost",
        "vteam.example",
        "the-machine.example",
        "elsewhere.example",
        "::ffff:127.0.0.1",
        platform_port=8080,
        platform_hosts=("vteam.example", "198.51.100.7"),
    )
    reason = policy.refusal(host, port, addresses)
    assert (reason == "the vTeam platform's own address") is refused
    assert refused or reason is None


def test_mirrored_ports_are_loopback_model_servers_but_never_the_platform() -> None:
    settings = {
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9100",
        "OPENAI_BASE_URL": "http://localhost:9200/v1",
        "GOOGLE_GEMINI_BASE_URL": "http://[::1]:9300",
        "LAN": "http://10.0.0.5:9400",
        "PUBLIC": "https://api.openai.com/v1",
        "DEFAULT_PORT": "http://127.0.0.1/v1",
        "PLATFORM": "http://127.0.0.1:8080/api",
        "NOT_A_URL": "3",
        "BAD_PORT": "http://127.0.0.1:99999",
    }
    allow = "gateway.lan:4000, 127.0.0.1:9500 localhost:9600 [::1]:9700 127.0.0.1 10.0.0.5:9800"
    assert mirror_ports(settings, allow, "http://127.0.0.1:8080") == {9100, 9200, 9300, 80, 9500, 9600, 9700}
    assert mirror_ports(settings, "", "http://0.0.0.0:8080") == {9100, 9200, 9300, 80}
    assert 8080 in mirror_ports(settings, "", "https://vteam.example:8080")


def test_the_allow_list_holds_configured_url_hosts_and_the_operators_entries() -> None:
    settings = {"OPENAI_BASE_URL": "http://gateway.lan:4000/v1", "X": "https://api.anthropic.com", "N": "3"}
    assert allow_list(settings, "10.0.0.9, llm.lan:8000") == {
        "gateway.lan:4000",
        "api.anthropic.com:443",
        "10.0.0.9",
        "llm.lan:8000",
    }


@pytest.mark.parametrize("text", ["host:", "host:0", "host:65536", "host:x", "[::1", "[::1]x", "a b", ""])
def test_malformed_host_entries_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        split_host_port(text)


def test_connect_and_absolute_form_requests_are_parsed_and_rewritten() -> None:
    connect = parse_request(b"CONNECT Api.Example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
    assert (connect.host, connect.port, connect.upstream_head) == ("api.example.com", 443, None)
    assert parse_request(b"CONNECT [::1]:9000 HTTP/1.1\r\n\r\n").host == "::1"

    plain = parse_request(
        b"POST http://user:pw@example.com:8000/a/b?c=1#frag HTTP/1.1\r\nHost: elsewhere\r\n"
        b"Proxy-Authorization: Basic c2VjcmV0\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n"
        b"Keep-Alive: 5\r\nContent-Length: 2\r\n\r\n"
    )
    assert (plain.host, plain.port) == ("example.com", 8000)
    assert plain.upstream_head == (
        b"POST /a/b?c=1 HTTP/1.1\r\nHost: example.com:8000\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    )


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET https://example.com/ HTTP/1.1\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\n\r\n",
        b"CONNECT 127.0.0.1:0 HTTP/1.1\r\n\r\n",
        b"GET http://example.com/ HTTP/2\r\n\r\n",
        b"GET  http://example.com/ HTTP/1.1\r\n\r\n",
        b"GET http://exa mple.com/ HTTP/1.1\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\n folded\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET http:///path HTTP/1.1\r\n\r\n",
        b"GET http://example.com:0/ HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_proxy_requests_are_refused(head: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_request(head)
