"""ResourceStore on SQLite: one row per resource, one row per change for watches."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vteam.db import Database
from vteam.db.schema import changes, resources
from vteam.errors import AlreadyExists, Conflict, Expired, InvalidInput, NotFound
from vteam.resources import STORED, Project, Resource
from vteam.store import selectors
from vteam.store.base import R, ResourceList, WatchEvent, WatchType

KEEP_CHANGES = 20_000


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ns(kind: type[Resource], namespace: str | None) -> str:
    return (namespace or "") if kind.NAMESPACED else ""


def _describe(kind: type[Resource], name: str, namespace: str) -> str:
    where = f" in project {namespace!r}" if namespace else ""
    return f"{kind.KIND} {name!r}{where}"


class SqliteStore:
    """Writes are bodies of the database's group commit; watchers wake on an in-process tick once a write's
    batch is committed. Resource versions come from the changes table inside the write, so they follow the
    order in which the bodies ran."""

    def __init__(self, db: Database, *, keep_changes: int = KEEP_CHANGES) -> None:
        self._db = db
        self._keep = keep_changes
        self._tick = asyncio.Event()
        self._writes = 0

    async def close(self) -> None:
        self._wake()

    def _wake(self) -> None:
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    async def _next_rv(self, conn: AsyncConnection) -> int:
        current = (await conn.execute(select(func.max(changes.c.rv)))).scalar()
        return int(current or 0) + 1

    async def _record(
        self, conn: AsyncConnection, rv: int, kind: str, ns: str, name: str, typ: WatchType, body: dict[str, Any]
    ) -> None:
        await conn.execute(insert(changes).values(rv=rv, kind=kind, namespace=ns, name=name, type=typ, body=body))
        self._writes += 1
        if self._writes % max(1, min(1000, self._keep // 2)) == 0:
            await conn.execute(delete(changes).where(changes.c.rv <= rv - self._keep))

    async def _row(self, conn: AsyncConnection, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        row = (
            await conn.execute(
                select(resources.c.body).where(
                    and_(resources.c.kind == kind, resources.c.namespace == ns, resources.c.name == name)
                )
            )
        ).first()
        return dict(row[0]) if row else None

    async def create(self, obj: R) -> R:
        kind = type(obj)
        ns = _ns(kind, obj.metadata.namespace)
        if kind.NAMESPACED and not ns:
            raise InvalidInput(f"{kind.KIND} needs a project")
        body = obj.wire()
        meta = body["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["generation"] = 1
        if kind.NAMESPACED:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        async with self._db.begin(on_commit=self._wake) as conn:
            if kind.NAMESPACED and await self._row(conn, Project.KIND, "", ns) is None:
                raise NotFound(f"project {ns!r} not found")
            if await self._row(conn, kind.KIND, ns, obj.name) is not None:
                raise AlreadyExists(f"{_describe(kind, obj.name, ns)} already exists")
            rv = await self._next_rv(conn)
            # Stamped in the write, so creation times follow the order of the writes (resource versions).
            meta["creationTimestamp"] = _now()
            meta["resourceVersion"] = str(rv)
            await conn.execute(
                insert(resources).values(
                    kind=kind.KIND, namespace=ns, name=obj.name, uid=meta["uid"], resource_version=rv, body=body
                )
            )
            await self._record(conn, rv, kind.KIND, ns, obj.name, "ADDED", body)
        return kind.model_validate(body, context=STORED)

    async def get(self, kind: type[R], name: str, namespace: str | None = None) -> R:
        ns = _ns(kind, namespace)
        async with self._db.read() as conn:
            body = await self._row(conn, kind.KIND, ns, name)
        if body is None:
            raise NotFound(f"{_describe(kind, name, ns)} not found")
        return kind.model_validate(body, context=STORED)

    async def versions(self, kind: type[R], namespace: str | None = None) -> dict[str, str]:
        query = select(resources.c.name, resources.c.resource_version).where(resources.c.kind == kind.KIND)
        if namespace is not None and kind.NAMESPACED:
            query = query.where(resources.c.namespace == namespace)
        async with self._db.read() as conn:
            return {name: str(rv) for name, rv in await conn.execute(query)}

    async def current_version(self) -> str:
        async with self._db.read() as conn:
            return str((await conn.execute(select(func.max(changes.c.rv)))).scalar() or 0)

    async def list(
        self,
        kind: type[R],
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        phase: str | None = None,
    ) -> ResourceList[R]:
        """The phase is matched in the query; labels in Python, so without a selector one more row than
        `limit` is all that is read."""
        matches = selectors.parse(label_selector)
        if limit is not None and limit < 1:
            raise InvalidInput("limit must be at least 1")
        query = select(resources.c.namespace, resources.c.name, resources.c.body).where(resources.c.kind == kind.KIND)
        if namespace is not None and kind.NAMESPACED:
            query = query.where(resources.c.namespace == namespace)
        if continue_token:
            after_ns, after_name = _decode_continue(continue_token)
            query = query.where(
                (resources.c.namespace > after_ns)
                | and_(resources.c.namespace == after_ns, resources.c.name > after_name)
            )
        if phase is not None:
            query = query.where(resources.c.body["status"]["phase"].as_string() == phase)
        query = query.order_by(resources.c.namespace, resources.c.name)
        if limit is not None and not (label_selector and label_selector.strip()):
            query = query.limit(limit + 1)
        items: list[R] = []
        more = False
        last: tuple[str, str] | None = None
        async with self._db.read() as conn:
            current_rv = (await conn.execute(select(func.max(changes.c.rv)))).scalar() or 0
            for ns, name, body in await conn.execute(query):
                if not matches(body["metadata"].get("labels") or {}):
                    continue
                if limit is not None and len(items) >= limit:
                    more = True
                    break
                items.append(kind.model_validate(body, context=STORED))
                last = (ns, name)
        token = _encode_continue(*last) if more and last else None
        return ResourceList(items=items, resource_version=str(current_rv), continue_token=token)

    async def replace(self, obj: R) -> R:
        kind = type(obj)
        ns = _ns(kind, obj.metadata.namespace)
        async with self._db.begin(on_commit=self._wake) as conn:
            current = await self._row(conn, kind.KIND, ns, obj.name)
            if current is None:
                raise NotFound(f"{_describe(kind, obj.name, ns)} not found")
            given = obj.metadata.resource_version
            if given is None or given != current["metadata"]["resourceVersion"]:
                raise Conflict(
                    f"{_describe(kind, obj.name, ns)} was changed by someone else "
                    f"(resourceVersion {given} is stale); read it again and retry"
                )
            new = obj.wire()
            meta = dict(current["metadata"])
            meta["labels"] = new["metadata"].get("labels", {})
            meta["annotations"] = new["metadata"].get("annotations", {})
            meta["ownerReferences"] = new["metadata"].get("ownerReferences", [])
            if new.get("spec") != current.get("spec"):
                meta["generation"] = int(meta.get("generation", 1)) + 1
            body = {**current, "spec": new.get("spec"), "metadata": meta}
            result = await self._write(conn, kind, ns, obj.name, body)
        return result

    async def patch_status(
        self,
        kind: type[R],
        name: str,
        namespace: str | None,
        status: dict[str, Any],
        *,
        resource_version: str | None = None,
    ) -> R:
        ns = _ns(kind, namespace)
        async with self._db.begin(on_commit=self._wake) as conn:
            current = await self._row(conn, kind.KIND, ns, name)
            if current is None:
                raise NotFound(f"{_describe(kind, name, ns)} not found")
            if resource_version is not None and resource_version != current["metadata"]["resourceVersion"]:
                raise Conflict(f"{_describe(kind, name, ns)} changed since resourceVersion {resource_version}")
            body = {**current, "status": {**(current.get("status") or {}), **status}}
            kind.model_validate(body, context=STORED)
            result = await self._write(conn, kind, ns, name, body)
        return result

    async def _write(self, conn: AsyncConnection, kind: type[R], ns: str, name: str, body: dict[str, Any]) -> R:
        rv = await self._next_rv(conn)
        body["metadata"] = {**body["metadata"], "resourceVersion": str(rv)}
        await conn.execute(
            update(resources)
            .where(and_(resources.c.kind == kind.KIND, resources.c.namespace == ns, resources.c.name == name))
            .values(resource_version=rv, body=body)
        )
        await self._record(conn, rv, kind.KIND, ns, name, "MODIFIED", body)
        return kind.model_validate(body, context=STORED)

    async def delete(self, kind: type[R], name: str, namespace: str | None = None) -> None:
        ns = _ns(kind, namespace)
        async with self._db.begin(on_commit=self._wake) as conn:
            body = await self._row(conn, kind.KIND, ns, name)
            if body is None:
                raise NotFound(f"{_describe(kind, name, ns)} not found")
            doomed: list[tuple[str, str, str, dict[str, Any]]] = []
            if not kind.NAMESPACED:
                rows = await conn.execute(
                    select(resources.c.kind, resources.c.namespace, resources.c.name, resources.c.body).where(
                        resources.c.namespace == name
                    )
                )
                doomed.extend((k, n, nm, dict(b)) for k, n, nm, b in rows)
            doomed.append((kind.KIND, ns, name, body))
            for d_kind, d_ns, d_name, d_body in doomed:
                await conn.execute(
                    delete(resources).where(
                        and_(resources.c.kind == d_kind, resources.c.namespace == d_ns, resources.c.name == d_name)
                    )
                )
                rv = await self._next_rv(conn)
                d_body["metadata"] = {**d_body["metadata"], "resourceVersion": str(rv)}
                await self._record(conn, rv, d_kind, d_ns, d_name, "DELETED", d_body)

    async def watch(
        self, kind: type[R], namespace: str | None = None, *, resource_version: str | None = None
    ) -> AsyncIterator[WatchEvent[R]]:
        if resource_version is None:
            async with self._db.read() as conn:
                after = int((await conn.execute(select(func.max(changes.c.rv)))).scalar() or 0)
        else:
            try:
                after = int(resource_version)
            except ValueError as exc:
                raise InvalidInput(f"resourceVersion {resource_version!r} is not a number") from exc
        while True:
            tick = self._tick
            query = (
                select(changes.c.rv, changes.c.type, changes.c.body)
                .where(and_(changes.c.rv > after, changes.c.kind == kind.KIND))
                .order_by(changes.c.rv)
                .limit(500)
            )
            if namespace is not None and kind.NAMESPACED:
                query = query.where(changes.c.namespace == namespace)
            async with self._db.read() as conn:
                oldest = (await conn.execute(select(func.min(changes.c.rv)))).scalar()
                if oldest is not None and after < int(oldest) - 1:
                    raise Expired(f"resourceVersion {after} is too old; list again and watch from its version")
                rows = (await conn.execute(query)).all()
            for rv, typ, body in rows:
                after = rv
                yield WatchEvent(type=typ, object=kind.model_validate(body, context=STORED))
            if not rows:
                await tick.wait()


def _encode_continue(ns: str, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ns, name]).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(ns), str(name)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("continue token is not one this server gave out") from exc
