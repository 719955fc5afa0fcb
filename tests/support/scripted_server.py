"""The scaffold the fake model servers share: a threaded HTTP server on 127.0.0.1 that plays a script.

A fake subclasses `ScriptedServer` and writes only its API: `_handle` answers one request (reading it with
`read_body`, checking the key with `authorized`, taking replies with `_next_reply`, recording with `_record`, and
answering with `send_json` or chunks). The scaffold runs the server on a free port while the fake is open as a
context manager, keeps the script, the recorded requests (secrets removed) and the fake's own `errors`, which
tests assert stay empty.
"""

from __future__ import annotations

import functools
import hmac
import json
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import pydantic


class HasKind(Protocol):
    @property
    def kind(self) -> str: ...


Reply = TypeVar("Reply")
Recorded = TypeVar("Recorded", bound=HasKind)


class ScriptedServer(ABC, Generic[Reply, Recorded]):
    """A fake served on a free port of 127.0.0.1 while open; subclasses answer requests in `_handle`."""

    name: ClassVar[str] = "fake-server"
    """The serving thread's name."""
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization", "cookie", "proxy-authorization"})
    """Headers never recorded."""

    def __init__(self, replies: Sequence[Reply], *, api_key: str, final_reply: Reply) -> None:
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self._final_reply = final_reply
        self._script = list(replies)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """http://127.0.0.1:<port>, without a path."""
        assert self._server is not None, f"{type(self).__name__} is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add(self, *replies: Reply) -> None:
        """Append scripted replies (a test may script after the server has started)."""
        with self._lock:
            self._script.extend(replies)

    @property
    def remaining(self) -> int:
        """Scripted replies not yet consumed."""
        with self._lock:
            return len(self._script)

    def of_kind(self, kind: str) -> list[Recorded]:
        """The recorded requests of one kind, e.g. the "script" ones that drove the agent loop."""
        return [r for r in self.requests if r.kind == kind]

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll interval, so that close() (shutdown waits for a poll) costs tests little time.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- for subclasses (running on the server's threads) ---

    @abstractmethod
    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        """Answer one request the way the real API would."""

    def authorized(self, presented: str | None, *, scheme: str = "") -> bool:
        """Whether a request's credential is the fake's key, after `scheme` (e.g. "Bearer ") when given."""
        return presented is not None and hmac.compare_digest(presented.encode(), f"{scheme}{self.api_key}".encode())

    def recorded_headers(self, http: BaseHTTPRequestHandler) -> dict[str, str]:
        """The request's headers, lower-cased, without the secret ones."""
        return {k.lower(): v for k, v in http.headers.items() if k.lower() not in self.secret_headers}

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.pop(0) if self._script else self._final_reply

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: ScriptedServer[Any, Any]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when a client drops a kept-alive connection between requests; report anything else as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the fake; HTTP/1.1 so clients keep connections alive as with the real API."""

    protocol_version = "HTTP/1.1"
    timeout = 60
    server: _Server

    def do_POST(self) -> None:
        try:
            self.server.fake._handle(self)
        except ConnectionError:
            self.close_connection = True  # the client went away mid-answer, e.g. an interrupted agent
        except Exception as exc:
            self.server.fake._error(f"the fake failed on {self.command} {self.path}: {exc!r}")
            raise

    do_GET = do_HEAD = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `.requests` instead."""


def read_body(http: BaseHTTPRequestHandler) -> tuple[bytes, Any]:
    """The raw body and its JSON (the text itself when it is not JSON, None when empty)."""
    raw = http.rfile.read(int(http.headers.get("content-length") or 0))
    try:
        return raw, json.loads(raw) if raw else None
    except ValueError:
        return raw, raw.decode(errors="replace")


def send_json(
    http: BaseHTTPRequestHandler, status: int, payload: Any, *, content_type: str, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(payload).encode()
    http.send_response(status)
    http.send_header("content-type", content_type)
    http.send_header("content-length", str(len(data)))
    for name, value in (headers or {}).items():
        http.send_header(name, value)
    http.end_headers()
    if http.command != "HEAD":
        http.wfile.write(data)


def write_chunk(http: BaseHTTPRequestHandler, frame: str) -> None:
    """One frame as one HTTP chunk, flushed, so the client sees it before the next is made."""
    data = frame.encode()
    http.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    http.wfile.flush()


def end_chunks(http: BaseHTTPRequestHandler) -> None:
    """The last chunk of the chunked encoding."""
    http.wfile.write(b"0\r\n\r\n")
    http.wfile.flush()


def tokens(raw: bytes) -> int:
    """A plausible token count: about four bytes a token."""
    return max(1, len(raw) // 4)


def pieces(value: str, size: int) -> list[str]:
    """Split as a real stream does, a few tokens per delta, never zero deltas."""
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


@functools.cache
def adapter(schema: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(schema)


def summary(exc: pydantic.ValidationError, limit: int = 5) -> str:
    """The first few errors: a union mismatch lists every variant's complaint, which drowns the useful one."""
    lines = [f"{'.'.join(map(str, e['loc']))}: {e['msg']} ({e['input']!r:.80})" for e in exc.errors()[:limit]]
    return f"{exc.error_count()} errors: " + "; ".join(lines)
