"""git's smart HTTP protocol on 127.0.0.1: `git http-backend` as CGI behind HTTP basic auth.

This is the real server side of git over HTTP, so clones and pushes over http:// in tests
go through the same protocol, credential prompts and askpass as against a real forge.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, whether sent with a length or chunked (as git sends large pushes)."""
    length = int(handler.headers.get("Content-Length") or 0)
    if length:
        return handler.rfile.read(length)
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    data = b""
    while True:
        size = int(handler.rfile.readline().strip(), 16)
        if size == 0:
            handler.rfile.readline()
            return data
        data += handler.rfile.read(size)
        handler.rfile.readline()


def http_backend(
    root: Path,
    method: str,
    path_info: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    remote_user: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Run `git http-backend` for one request below `root`: (status, headers, payload)."""
    lower = {k.lower(): v for k, v in headers.items()}
    cgi = {
        "PATH": "/usr/bin:/bin",
        "GIT_PROJECT_ROOT": str(root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "REQUEST_METHOD": method,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "CONTENT_TYPE": lower.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_CONTENT_ENCODING": lower.get("content-encoding", ""),
        "GIT_PROTOCOL": lower.get("git-protocol", ""),
        **({"REMOTE_USER": remote_user} if remote_user else {}),
        **(env or {}),
    }
    result = subprocess.run(["git", "http-backend"], input=body, env=cgi, capture_output=True, check=False)
    head, _, payload = result.stdout.partition(b"\r\n\r\n")
    status = 200
    out: list[tuple[str, str]] = []
    for line in head.decode().split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            out.append((name, value.strip()))
    return status, out, payload


class GitHttpServer:
    def __init__(self, root: Path, *, username: str, password: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.auth_failures = 0
        self.requests: list[str] = []
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> GitHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                server.requests.append(self.requestline)

            def do_GET(self) -> None:
                self._cgi()

            def do_POST(self) -> None:
                self._cgi()

            def _cgi(self) -> None:
                if self.headers.get("Authorization") != server.expected:
                    server.auth_failures += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = urlsplit(self.path)
                status, headers, payload = http_backend(
                    server.root,
                    self.command,
                    parts.path,
                    parts.query,
                    dict(self.headers.items()),
                    read_body(self),
                    remote_user="tester",
                )
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler
