"""Installs the web UI's front-end libraries (htmx and its SSE extension) from the npm registry without node, so
that the platform needs no node of its own: each tarball must match the sha512 integrity pinned in the Makefile,
and is unpacked into node_modules the way npm lays it out, where `vteam.web.assets` finds it.

`make` runs this file by path (`python -P src/vteam/web/vendor.py`) before vTeam's dependencies are installed,
so it uses the standard library only. Everything is downloaded and checked before anything is written, and the
new node_modules replaces the old one whole: a failure leaves the previous install, or none, as it was.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import io
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

REGISTRY = "https://registry.npmjs.org"
TIMEOUT_SECONDS = 60
MAX_TARBALL_BYTES = 16 * 1024 * 1024
"""Far above what htmx weighs (about 220 KB), low enough that a wrong URL cannot fill the disk or memory."""
_NAME = re.compile(r"(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*")


class VendorError(Exception):
    """A library could not be downloaded, did not match its pin, or would not unpack safely."""


@dataclass(frozen=True)
class Pin:
    """One npm package at one version, with npm's `dist.integrity` for its tarball."""

    name: str
    version: str
    integrity: str

    @classmethod
    def parse(cls, text: str) -> Pin:
        """`NAME@VERSION=sha512-BASE64`, as the Makefile writes it."""
        spec, _, integrity = text.partition("=")
        name, _, version = spec.rpartition("@")
        if not _NAME.fullmatch(name) or not version or not integrity.startswith("sha512-"):
            raise VendorError(f"{text!r} is not NAME@VERSION=sha512-...")
        return cls(name, version, integrity)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name.rpartition('/')[2]}-{self.version}.tgz"


def download(pin: Pin, registry: str) -> bytes:
    """The tarball's bytes, once they match the pinned integrity."""
    url = pin.tarball_url(registry)
    if not url.startswith(("https://", "http://")):
        raise VendorError(f"the registry must be an http(s) URL, not {registry!r}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (scheme checked above)
            body: bytes = response.read(MAX_TARBALL_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise VendorError(f"{pin}: {url} answered HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise VendorError(f"{pin}: cannot download {url}: {error.reason}") from error
    except (OSError, http.client.HTTPException) as error:
        raise VendorError(f"{pin}: cannot download {url}: {error}") from error
    if len(body) > MAX_TARBALL_BYTES:
        raise VendorError(f"{pin}: {url} is larger than {MAX_TARBALL_BYTES} bytes")
    actual = "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()
    if not hmac.compare_digest(actual, pin.integrity):
        raise VendorError(f"{pin}: integrity mismatch for {url}: pinned {pin.integrity}, downloaded {actual}")
    return body


def unpack(pin: Pin, tarball: bytes, into: Path) -> None:
    """Writes the tarball's regular files under `into`, without npm's top folder (`package/`); a link, a device or
    a path that leaves the package is refused."""
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for member in archive:
                if member.isdir():
                    continue
                path = PurePosixPath(member.name)
                relative = path.parts[1:]
                if not member.isfile() or path.is_absolute() or not relative or ".." in relative:
                    raise VendorError(f"{pin}: refusing the tarball entry {member.name!r}")
                source = archive.extractfile(member)
                if source is None:
                    raise VendorError(f"{pin}: the tarball entry {member.name!r} has no content")
                target = into.joinpath(*relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                with source, target.open("wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise VendorError(f"{pin}: cannot unpack the tarball: {error}") from error


def install(pins: Sequence[Pin], into: Path, registry: str = REGISTRY) -> None:
    """Puts every pinned package in `into/<name>`, replacing `into` whole once all of them are unpacked."""
    tarballs = [(pin, download(pin, registry)) for pin in pins]
    parent = into.parent
    created = [folder for folder in (parent, *parent.parents) if not folder.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{into.name}-new-", dir=parent))
    try:
        for pin, tarball in tarballs:
            unpack(pin, tarball, staging / pin.name)
    except VendorError:
        shutil.rmtree(staging)
        for folder in created:
            folder.rmdir()
        raise
    retired = Path(tempfile.mkdtemp(prefix=f".{into.name}-old-", dir=parent))
    if into.exists():
        into.rename(retired / into.name)
    staging.rename(into)
    shutil.rmtree(retired)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install pinned npm packages for the web UI, without node.")
    parser.add_argument("--into", type=Path, required=True, help="the node_modules folder to fill")
    parser.add_argument("--registry", default=REGISTRY, help=f"npm registry (default: {REGISTRY})")
    parser.add_argument("pins", nargs="+", metavar="NAME@VERSION=sha512-...")
    args = parser.parse_args(argv)
    try:
        install([Pin.parse(text) for text in args.pins], args.into, args.registry)
    except VendorError as error:
        print(f"web UI libraries not installed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
