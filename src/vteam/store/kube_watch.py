"""A Kubernetes watch that never gives up quietly: it resumes where it stopped and relists when history is gone.

Like an informer it keeps the last body it saw of every object in scope, so that after a 410 Gone it can
hand its reader exactly what changed while it was not looking, as ordinary watch events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic

import aiohttp
from pydantic import ValidationError

from vteam.errors import Expired, Unavailable
from vteam.kube import ApiException, translate
from vteam.store.base import R, WatchEvent, WatchType
from vteam.store.kube_mapping import Key, key_of, uid_of, version_of

log = logging.getLogger(__name__)

WATCH_SECONDS = 290
"""Ask the server to end each watch after this long; the loop then resumes from the last version seen."""
PAGE = 500
MAX_FAILURES = 6
"""Unanswered reconnects in a row before the watch reports the API server unavailable (about 10 s)."""

Raw = dict[str, Any]


class Gone(Exception):
    """The server no longer holds the history after the version asked for."""


class _Retry(Exception):
    """A failure worth reconnecting for: a dropped connection, an overloaded or restarting server."""


@dataclass
class Feed(Generic[R]):
    """One kind in one scope, as the watch loop needs to see it."""

    what: str
    list_page: Callable[[str | None, int], Awaitable[Raw]]
    open_watch: Callable[[str, int], Awaitable[aiohttp.ClientResponse]]
    convert: Callable[[Raw], R]
    visible: Callable[[Raw], bool] = field(default=lambda raw: True)


async def list_all(feed: Feed[Any]) -> tuple[list[Raw], str]:
    """Every object in scope and the version of that snapshot (every page shares the first page's)."""
    items: list[Raw] = []
    token: str | None = None
    version = ""
    while True:
        try:
            page = await feed.list_page(token, PAGE)
        except Expired:
            if token is None:
                raise
            items, token, version = [], None, ""  # the snapshot aged out between pages: start again
            continue
        items.extend(page.get("items") or [])
        meta = page.get("metadata") or {}
        version = version or str(meta.get("resourceVersion") or "")
        token = meta.get("continue") or None
        if token is None:
            return items, version


class _Tracker(Generic[R]):
    """What the reader has been told so far, to turn a relisting into the events it missed."""

    def __init__(self, feed: Feed[R]) -> None:
        self._feed = feed
        self._known: dict[Key, Raw] = {}
        self._hidden: set[str] = set()

    async def relist(self, *, first: bool = False) -> tuple[list[WatchEvent[R]], str]:
        """What changed since the reader was last told; the first time, only the baseline.

        An object already invisible (a terminating namespace) counts as reported gone after a relist, but
        not at first: a watch that replays from an older version must still report it going.
        """
        items, version = await list_all(self._feed)
        fresh = {key_of(raw): raw for raw in items if self._feed.visible(raw)}
        if first:
            self._known = fresh
            return [], version
        changes: list[tuple[WatchType, Raw]] = []
        for key in sorted(self._known.keys() - fresh.keys()):
            changes.append(("DELETED", self._known[key]))
        for key in sorted(fresh):
            old, new = self._known.get(key), fresh[key]
            if old is None:
                changes.append(("ADDED", new))
            elif uid_of(old) != uid_of(new):
                changes += [("DELETED", old), ("ADDED", new)]
            elif version_of(old) != version_of(new):
                changes.append(("MODIFIED", new))
        self._known = fresh
        self._hidden = {uid_of(raw) for raw in items if not self._feed.visible(raw)}
        return self._events(changes), version

    def apply(self, typ: WatchType, raw: Raw) -> list[WatchEvent[R]]:
        key, uid = key_of(raw), uid_of(raw)
        if typ == "DELETED":
            self._known.pop(key, None)
            if uid in self._hidden:
                self._hidden.discard(uid)
                return []
            return self._events([(typ, raw)])
        if not self._feed.visible(raw):
            self._known.pop(key, None)
            if uid in self._hidden:
                return []
            self._hidden.add(uid)
            return self._events([("DELETED", raw)])
        self._known[key] = raw
        return self._events([(typ, raw)])

    def _events(self, changes: list[tuple[WatchType, Raw]]) -> list[WatchEvent[R]]:
        events = []
        for typ, raw in changes:
            try:
                events.append(WatchEvent(type=typ, object=self._feed.convert(raw)))
            except ValidationError as exc:
                log.warning(
                    "%s: skipping %s %s, which is not a valid object: %s", self._feed.what, typ, key_of(raw), exc
                )
        return events


async def watch(feed: Feed[R], resource_version: str | None) -> AsyncIterator[WatchEvent[R]]:
    """Changes after `resource_version` (after now when None), resuming and relisting as needed, forever.

    Expired only when the caller's own version is too old at the start; later 410s relist instead.
    """
    tracker = _Tracker(feed)
    _, version = await tracker.relist(first=True)
    may_expire = resource_version is not None
    if resource_version is not None:
        version = resource_version
    failures = 0
    empty = 0
    while True:
        try:
            if empty:
                # A stream that ends at once, again and again (a proxy cutting it), must not spin.
                await asyncio.sleep(min(0.1 * 2**empty, 5.0))
            response = await _open(feed, version)
            empty += 1
            try:
                while (line := await _readline(response)) != b"":
                    if not line.strip():
                        continue
                    typ, raw = _event(line)
                    may_expire = False
                    failures = 0
                    empty = 0
                    version = version_of(raw) or version
                    if typ == "BOOKMARK":
                        continue
                    for event in tracker.apply(typ, raw):
                        yield event
            finally:
                response.close()
            may_expire = False
        except Gone as exc:
            if may_expire:
                raise Expired(
                    f"resourceVersion {resource_version} of {feed.what} is too old; "
                    "list again and watch from the list's version"
                ) from exc
            log.info("%s: history after %s is gone; relisting", feed.what, version)
            events, version = await tracker.relist()
            for event in events:
                yield event
        except _Retry as exc:
            failures += 1
            if failures > MAX_FAILURES:
                raise Unavailable(f"the Kubernetes API stopped answering the watch of {feed.what}: {exc}") from exc
            log.info("%s: watch interrupted (%s); resuming from %s", feed.what, exc, version)
            await asyncio.sleep(min(0.1 * 2**failures, 5.0))


async def _open(feed: Feed[Any], version: str) -> aiohttp.ClientResponse:
    try:
        response = await feed.open_watch(version, WATCH_SECONDS)
    except ApiException as exc:
        body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
        raise _check(exc.status or 0, str(exc.reason), body, feed.what) from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _Retry(str(exc) or type(exc).__name__) from exc
    if response.status != 200:
        body = await response.text()
        response.close()
        raise _check(response.status, str(response.reason), body, feed.what)
    return response


async def _readline(response: aiohttp.ClientResponse) -> bytes:
    try:
        return await response.content.readline()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise _Retry(str(exc) or type(exc).__name__) from exc


def _event(line: bytes) -> tuple[Any, Raw]:
    try:
        event = json.loads(line)
        typ, raw = event["type"], event["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Retry(f"the server sent a line that is not a watch event: {line[:200]!r}") from exc
    if typ == "ERROR":
        raise _check(int(raw.get("code") or 0), str(raw.get("reason") or ""), json.dumps(raw), "a watch")
    return typ, raw


def _check(status: int, reason: str, body: str | None, what: str) -> Exception:
    """Gone for 410, _Retry for what reconnecting may cure, else the vTeam error for the failure."""
    if status == 410:
        return Gone(reason)
    if status == 0 or status == 429 or status >= 500:
        return _Retry(f"{status} {reason}".strip())
    exc = ApiException(status=status, reason=reason)
    exc.body = body  # type: ignore[assignment]
    return translate(exc, what)
