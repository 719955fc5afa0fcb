"""The web UI's libraries install without node: `src/vteam/web/vendor.py`, run by path as `make` runs it, against
a registry on 127.0.0.1 serving npm-style tarballs; a tarball that does not match its pin leaves nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "src" / "vteam" / "web" / "vendor.py"


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def integrity(body: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()


class Registry:
    """Tarballs at npm's paths (`/<name>/-/<name>-<version>.tgz`); any other path answers 404."""

    def __init__(self) -> None:
        self.tarballs: dict[str, bytes] = {}
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = registry.tarballs.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, name: str, version: str, files: dict[str, bytes]) -> str:
        """Serves the package and returns its pin, as the Makefile writes it."""
        body = tarball(files)
        self.tarballs[f"/{name}/-/{name}-{version}.tgz"] = body
        return f"{name}@{version}={integrity(body)}"


@pytest.fixture
def registry() -> Iterator[Registry]:
    served = Registry()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    yield served
    served.server.shutdown()
    served.server.server_close()
    thread.join()


def vendor(registry: Registry, into: Path, *pins: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-P", str(SCRIPT), "--registry", registry.url, "--into", str(into), *pins]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_pinned_tarballs_unpack_where_vteam_up_serves_them(registry: Registry, tmp_path: Path) -> None:
    htmx = registry.publish("htmx.org", "2.0.11", {"package/dist/htmx.min.js": b"htmx", "package/LICENSE": b"0BSD"})
    sse = registry.publish("htmx-ext-sse", "2.2.4", {"package/dist/sse.min.js": b"sse"})
    into = tmp_path / ".web" / "node_modules"

    done = vendor(registry, into, htmx, sse)

    assert done.returncode == 0, done.stderr
    assert (into / "htmx.org" / "dist" / "htmx.min.js").read_bytes() == b"htmx"
    assert (into / "htmx.org" / "LICENSE").read_bytes() == b"0BSD"
    assert (into / "htmx-ext-sse" / "dist" / "sse.min.js").read_bytes() == b"sse"
    assert sorted(p.name for p in into.parent.iterdir()) == ["node_modules"]


def test_a_mismatched_integrity_is_one_line_and_leaves_no_web_folder(registry: Registry, tmp_path: Path) -> None:
    good = registry.publish("htmx.org", "2.0.11", {"package/dist/htmx.min.js": b"htmx"})
    registry.publish("htmx-ext-sse", "2.2.4", {"package/dist/sse.min.js": b"tampered"})
    wrong = f"htmx-ext-sse@2.2.4={integrity(b'what the pin promised')}"
    web = tmp_path / ".web"

    done = vendor(registry, web / "node_modules", good, wrong)

    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "htmx-ext-sse@2.2.4: integrity mismatch" in lines[0]
    assert not web.exists()


def test_a_failed_install_keeps_the_previous_one(registry: Registry, tmp_path: Path) -> None:
    into = tmp_path / ".web" / "node_modules"
    old = registry.publish("htmx.org", "2.0.10", {"package/dist/htmx.min.js": b"old"})
    assert vendor(registry, into, old).returncode == 0

    done = vendor(registry, into, f"htmx.org@2.0.11={integrity(b'unpublished')}")

    assert done.returncode == 1
    assert "htmx.org@2.0.11: " in done.stderr
    assert "answered HTTP 404" in done.stderr
    assert (into / "htmx.org" / "dist" / "htmx.min.js").read_bytes() == b"old"
    assert sorted(p.name for p in into.parent.iterdir()) == ["node_modules"]


def test_an_unreachable_registry_is_one_line(tmp_path: Path) -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{closed.server_address[1]}"
    closed.server_close()
    command = [sys.executable, "-P", str(SCRIPT), "--registry", url, "--into", str(tmp_path / "nm")]

    done = subprocess.run([*command, f"htmx.org@2.0.11={integrity(b'x')}"], capture_output=True, text=True, check=False)

    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "htmx.org@2.0.11: cannot download" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_entry_outside_the_package_is_refused(registry: Registry, tmp_path: Path) -> None:
    """Even a tarball that matches its pin may not write outside its own folder."""
    hostile = registry.publish("htmx.org", "2.0.11", {"package/ok.js": b"ok", "package/../../escaped": b"no"})
    into = tmp_path / "web" / "node_modules"

    done = vendor(registry, into, hostile)

    assert done.returncode == 1
    assert "refusing the tarball entry 'package/../../escaped'" in done.stderr
    assert list(tmp_path.iterdir()) == []
