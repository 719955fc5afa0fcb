"""What is left of a session's agent HOME and temp once its runner has exited: only what a continue needs.

The agent wrote this tree, so every entry is treated as hostile: symlinks are removed as links and never
followed, FIFOs, sockets and devices are removed unopened, a file with other names (a hard link) is removed
(it may be another name for a file outside), and deep trees are removed without recursion. What a framework
declares it needs (`FrameworkInfo.keep`) stays, with every secret value the runner was given replaced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import uuid
from collections import deque
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from stat import S_IMODE, S_ISDIR, S_ISREG

log = logging.getLogger(__name__)

MASK = b"[redacted]"
MIN_SECRET = 4
"""Shorter values are not redacted (as in `vteam.runner.redact`): they would mangle ordinary text."""
MAX_KEPT = 64 * 1024 * 1024
"""A kept file larger than this is removed rather than read into memory to redact."""
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def scrub(workspace: Path, keep: tuple[str, ...], secrets: Iterable[str]) -> None:
    """Remove `workspace/tmp`, and in `workspace/home` everything no `keep` glob names, redacting what stays.

    A glob is relative to HOME, one `fnmatch` pattern per path component (no `**`), and names regular
    files; folders stay only where they hold a kept file. Blocking: run it in a thread.
    """
    try:
        root = os.open(workspace, DIR_FLAGS)
    except FileNotFoundError:
        return
    try:
        try:
            _remove(root, "tmp")
        except OSError as exc:
            log.warning("removing the temp folder of %s: %s", workspace, exc)
        patterns = [tuple(glob.split("/")) for glob in keep]
        redactor = _Redactor(secrets)
        try:
            home = os.open("home", DIR_FLAGS, dir_fd=root)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            _remove(root, "home")
            return
        try:
            _scrub_folder(home, (), patterns, redactor)
        finally:
            os.close(home)
    finally:
        os.close(root)


class _Redactor:
    """Secret values as the bytes they may appear as in a file: raw UTF-8 and inside a JSON string."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[bytes] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET:
                continue
            for form in (secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]):
                with contextlib.suppress(UnicodeEncodeError):
                    forms.add(form.encode("utf-8", "surrogateescape"))
        self._forms = sorted(forms, key=len, reverse=True)

    def clean(self, data: bytes) -> bytes:
        for form in self._forms:
            if form in data:
                data = data.replace(form, MASK)
        return data

    def in_name(self, name: str) -> bool:
        """Whether a file name holds a secret: such a file is removed, not renamed."""
        raw = name.encode("utf-8", "surrogateescape")
        return any(form in raw for form in self._forms)


def _matches(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    return all(fnmatchcase(part, glob) for part, glob in zip(parts, pattern, strict=False))


def _scrub_folder(folder: int, parts: tuple[str, ...], patterns: list[tuple[str, ...]], redactor: _Redactor) -> None:
    """One folder of HOME at `parts`; recursion is bounded by the longest glob, deeper trees are removed."""
    with os.scandir(folder) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        here = (*parts, name)
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            continue
        try:
            if redactor.in_name(name):
                _remove(folder, name)
            elif S_ISDIR(info.st_mode) and any(len(p) > len(here) and _matches(p, here) for p in patterns):
                child = _open_folder(folder, name)
                try:
                    _scrub_folder(child, here, patterns, redactor)
                finally:
                    os.close(child)
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=folder)
            elif S_ISREG(info.st_mode) and any(len(p) == len(here) and _matches(p, here) for p in patterns):
                if not _redact(folder, name, info, redactor):
                    os.unlink(name, dir_fd=folder)
            else:
                _remove(folder, name)
        except OSError as exc:
            log.warning("wiping %s of a session's home: %s", "/".join(here), exc)


def _redact(folder: int, name: str, seen: os.stat_result, redactor: _Redactor) -> bool:
    """Rewrite a kept file without its secrets (a new file renamed over it); False if it must go instead."""
    if seen.st_nlink != 1 or seen.st_size > MAX_KEPT:
        return False
    fd = os.open(name, FILE_FLAGS, dir_fd=folder)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not S_ISREG(info.st_mode) or info.st_nlink != 1 or (info.st_dev, info.st_ino) != (seen.st_dev, seen.st_ino):
            return False
        data = handle.read(MAX_KEPT + 1)
    if len(data) > MAX_KEPT:
        return False
    clean = redactor.clean(data)
    if clean == data:
        return True
    # A new file, not a rewrite in place: the old one may still be open somewhere, or hard-linked after all.
    temporary = f".vteam-redact-{uuid.uuid4().hex}"
    out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
    try:
        with os.fdopen(out, "wb") as handle:
            handle.write(clean)
            with contextlib.suppress(PermissionError):
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)
            os.fchmod(handle.fileno(), S_IMODE(info.st_mode) & 0o777)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
    return True


def _open_folder(parent: int, name: str) -> int:
    """A folder's descriptor, never through a link; one the agent made unreadable is made readable first."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except PermissionError:
        if not S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
            raise
        os.chmod(name, 0o700, dir_fd=parent)
        return os.open(name, DIR_FLAGS, dir_fd=parent)


def _remove(parent: int, name: str) -> None:
    """Remove `name` in `parent` whatever it is, a link as a link; a folder's tree however deep, iteratively.

    Every folder found below the top one is first moved up into it, so no path grows deeper than two
    components and no more than two descriptors are open at a time.
    """
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not S_ISDIR(info.st_mode):
        os.unlink(name, dir_fd=parent)
        return
    top = _open_folder(parent, name)
    try:
        _empty(top)
    finally:
        os.close(top)
    os.rmdir(name, dir_fd=parent)


def _empty(top: int) -> None:
    """Empty the folder `top`: files unlinked, sub-folders moved up into `top`, emptied, then removed."""
    _writable(top)
    pending: deque[str] = deque()
    _clear(top, top, pending)
    while pending:
        name = pending.popleft()
        try:
            folder = _open_folder(top, name)
        except FileNotFoundError:
            continue
        try:
            _writable(folder)
            _clear(folder, top, pending)
        finally:
            os.close(folder)
        os.rmdir(name, dir_fd=top)


def _writable(folder: int) -> None:
    """Root removes anything; another user's own folder the agent made read-only is made writable first."""
    if os.geteuid() != 0:
        with contextlib.suppress(OSError):
            os.fchmod(folder, 0o700)


def _clear(folder: int, top: int, pending: deque[str]) -> None:
    """Unlink everything in `folder` that is not a folder; queue its folders, moved up into `top` first."""
    with os.scandir(folder) as entries:
        found = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for name, is_folder in found:
        if not is_folder:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=folder)
        elif folder == top:
            pending.append(name)
        else:
            moved = f".vteam-wipe-{uuid.uuid4().hex}"
            os.rename(name, moved, src_dir_fd=folder, dst_dir_fd=top)
            pending.append(moved)
