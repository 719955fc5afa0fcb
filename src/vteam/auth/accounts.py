"""Users, their API tokens, browser sessions and one-time login links, projects' access keys, and role bindings.

Every secret vTeam issues looks like `vt_<kind>_<id>_<secret>`: the id finds the record, and only a
SHA-256 of the (256-bit, random) secret is stored, so the database never holds a usable token.
A secret is shown once, when it is issued.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as upsert

from vteam.auth.changes import AccessChange, AccessChanges
from vteam.auth.roles import Role, highest
from vteam.db import Database
from vteam.db.schema import bindings, tokens, users
from vteam.errors import AlreadyExists, Conflict, InvalidInput, NotFound, Unauthorized
from vteam.resources import validation

TokenKind = Literal["api", "session", "login", "key"]
SubjectType = Literal["user", "group"]
PREFIX = "vt_"
_SHAPE = re.compile(r"^vt_(api|session|login|key)_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")
LAST_USED_EVERY = timedelta(minutes=1)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    display_name: str
    admin: bool
    created: str

    def wire(self) -> dict[str, Any]:
        return {"name": self.name, "displayName": self.display_name, "admin": self.admin, "created": self.created}


@dataclass(frozen=True)
class Token:
    id: str
    kind: TokenKind
    name: str
    user: str | None
    project: str | None
    role: Role | None
    created: str
    created_by: str
    expires: str | None
    last_used: str | None
    revoked: str | None

    @property
    def expired(self) -> bool:
        return self.expires is not None and datetime.fromisoformat(self.expires) <= now()

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "created": self.created,
            "createdBy": self.created_by,
            "expires": self.expires,
            "lastUsed": self.last_used,
            "revoked": self.revoked,
        }
        if self.kind == "key":
            out |= {"project": self.project, "role": self.role.value if self.role else None}
        return out


@dataclass(frozen=True)
class Binding:
    project: str
    subject_type: SubjectType
    subject_name: str
    role: Role
    created: str
    created_by: str

    def wire(self) -> dict[str, Any]:
        return {
            "subjectType": self.subject_type,
            "subjectName": self.subject_name,
            "role": self.role.value,
            "created": self.created,
            "createdBy": self.created_by,
        }


def _token(row: Any) -> Token:
    return Token(
        id=row.id,
        kind=row.kind,
        name=row.name,
        user=row.user,
        project=row.project,
        role=Role(row.role) if row.role else None,
        created=row.created,
        created_by=row.created_by,
        expires=row.expires,
        last_used=row.last_used,
        revoked=row.revoked,
    )


class Accounts:
    def __init__(self, db: Database) -> None:
        self._db = db
        self.changes = AccessChanges()
        """Revocations and binding changes, published after each is written, for open streams to re-check."""

    # Users

    async def create_user(self, name: str, *, display_name: str = "", admin: bool = False) -> User:
        user = User(name, display_name, admin, now().isoformat())
        async with self._db.begin() as conn:
            if (await conn.execute(select(users.c.name).where(users.c.name == name))).first():
                raise AlreadyExists(f"user {name!r} already exists")
            await conn.execute(
                insert(users).values(name=name, display_name=display_name, admin=admin, created=user.created)
            )
        return user

    async def get_user(self, name: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(select(users).where(users.c.name == name))).first()
        return User(row.name, row.display_name, bool(row.admin), row.created) if row else None

    async def list_users(self) -> list[User]:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.name))).all()
        return [User(r.name, r.display_name, bool(r.admin), r.created) for r in rows]

    async def any_user(self) -> bool:
        async with self._db.read() as conn:
            return (await conn.execute(select(users.c.name).limit(1))).first() is not None

    # Tokens: API tokens, browser sessions, login links, access keys

    async def issue(
        self,
        kind: TokenKind,
        *,
        name: str,
        created_by: str,
        user: str | None = None,
        project: str | None = None,
        role: Role | None = None,
        ttl: timedelta | None = None,
    ) -> tuple[Token, str]:
        """A new token and its secret, which is never stored and never shown again."""
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        created = now()
        record = Token(
            id=token_id,
            kind=kind,
            name=name,
            user=user,
            project=project,
            role=role,
            created=created.isoformat(),
            created_by=created_by,
            expires=(created + ttl).isoformat() if ttl else None,
            last_used=None,
            revoked=None,
        )
        async with self._db.begin() as conn:
            await conn.execute(
                insert(tokens).values(
                    id=token_id,
                    kind=kind,
                    name=name,
                    user=user,
                    project=project,
                    role=role.value if role else None,
                    hash=_hash(secret),
                    created=record.created,
                    created_by=created_by,
                    expires=record.expires,
                )
            )
        return record, f"{PREFIX}{kind}_{token_id}_{secret}"

    @staticmethod
    def looks_like(value: str) -> bool:
        return value.startswith(PREFIX)

    async def verify(self, value: str, *, kind: TokenKind | None = None) -> Token:
        """The live token a secret belongs to; Unauthorized for anything else, saying why without echoing it."""
        match = _SHAPE.match(value)
        if match is None or (kind is not None and match[1] != kind):
            raise Unauthorized("the token is not one vTeam issued")
        async with self._db.read() as conn:
            row = (await conn.execute(select(tokens).where(tokens.c.id == match[2]))).first()
        if row is None or row.kind != match[1] or not hmac.compare_digest(row.hash, _hash(match[3])):
            raise Unauthorized("the token is not one vTeam issued")
        token = _token(row)
        if token.revoked:
            raise Unauthorized("the token has been revoked")
        if token.expired:
            raise Unauthorized("the token has expired")
        await self._touch(token)
        return token

    async def _touch(self, token: Token) -> None:
        stamp = now()
        if token.last_used and stamp - datetime.fromisoformat(token.last_used) < LAST_USED_EVERY:
            return
        async with self._db.begin() as conn:
            await conn.execute(update(tokens).where(tokens.c.id == token.id).values(last_used=stamp.isoformat()))

    async def redeem(self, value: str) -> Token:
        """Use a one-time login link: valid once, then revoked."""
        try:
            token = await self.verify(value, kind="login")
        except Unauthorized as exc:
            if "revoked" in exc.detail:
                raise Unauthorized("the login link has already been used; ask an admin for a new one") from None
            raise Unauthorized(exc.detail.replace("the token", "the login link")) from None
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(tokens)
                .where(tokens.c.id == token.id, tokens.c.revoked.is_(None))
                .values(revoked=now().isoformat())
            )
        if not result.rowcount:
            raise Unauthorized("the login link has already been used")
        return token

    async def list_tokens(self, *, user: str | None = None, project: str | None = None, kind: TokenKind) -> list[Token]:
        query = select(tokens).where(tokens.c.kind == kind)
        if user is not None:
            query = query.where(tokens.c.user == user)
        if project is not None:
            query = query.where(tokens.c.project == project)
        async with self._db.read() as conn:
            rows = (await conn.execute(query.order_by(tokens.c.created, tokens.c.id))).all()
        return [_token(r) for r in rows]

    async def get_token(self, token_id: str) -> Token:
        async with self._db.read() as conn:
            row = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).first()
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return _token(row)

    async def revoke(self, token_id: str) -> Token:
        await self.revoke_live(token_id)
        return await self.get_token(token_id)

    async def revoke_live(self, token_id: str) -> bool:
        """Revoke a token; True only for the call that revoked it (a second revoke changes nothing)."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked.is_(None))
                .values(revoked=now().isoformat())
            )
        self.changes.publish(AccessChange(token_id=token_id))
        return bool(result.rowcount)

    # Role bindings

    async def bind(
        self,
        project: str,
        subject_type: SubjectType,
        subject_name: str,
        role: Role,
        *,
        created_by: str,
        keep_an_admin: bool = False,
    ) -> Binding:
        """Bind a role; with `keep_an_admin`, refused (Conflict) in the same transaction when it would demote the
        project's last admin."""
        try:
            validation.check_subject_name(subject_type, subject_name)
        except ValueError as exc:
            raise InvalidInput(str(exc), errors=[{"loc": ["subjectName"], "msg": str(exc)}]) from None
        binding = Binding(project, subject_type, subject_name, role, now().isoformat(), created_by)
        values = {
            "project": project,
            "subject_type": subject_type,
            "subject_name": subject_name,
            "role": role.value,
            "created": binding.created,
            "created_by": created_by,
        }
        stmt = upsert(bindings).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["project", "subject_type", "subject_name"], set_={"role": role.value}
        )
        async with self._db.begin() as conn:
            if keep_an_admin and role != Role.ADMIN:
                await self._check_an_admin_stays(conn, project, subject_type, subject_name)
            await conn.execute(stmt)
        self.changes.publish(AccessChange(project=project))
        return binding

    @staticmethod
    async def _check_an_admin_stays(conn: Any, project: str, subject_type: str, subject_name: str) -> None:
        """Inside the write's transaction (writers are serialised), so two demotions cannot both pass."""
        admins = (
            await conn.execute(
                select(bindings.c.subject_type, bindings.c.subject_name).where(
                    bindings.c.project == project, bindings.c.role == Role.ADMIN.value
                )
            )
        ).all()
        if admins and all((t, n) == (subject_type, subject_name) for t, n in admins):
            raise Conflict(
                f"{subject_type} {subject_name!r} is the project's last admin; make someone else admin first"
            )

    async def unbind(
        self, project: str, subject_type: SubjectType, subject_name: str, *, keep_an_admin: bool = False
    ) -> None:
        """Remove a binding; with `keep_an_admin`, refused (Conflict) in the same transaction when it is the
        project's last admin."""
        async with self._db.begin() as conn:
            if keep_an_admin:
                await self._check_an_admin_stays(conn, project, subject_type, subject_name)
            result = await conn.execute(
                delete(bindings).where(
                    bindings.c.project == project,
                    bindings.c.subject_type == subject_type,
                    bindings.c.subject_name == subject_name,
                )
            )
        if not result.rowcount:
            raise NotFound(f"no {subject_type} {subject_name!r} is bound in project {project!r}")
        self.changes.publish(AccessChange(project=project))

    async def bindings(self, project: str) -> list[Binding]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(bindings)
                    .where(bindings.c.project == project)
                    .order_by(bindings.c.subject_type, bindings.c.subject_name)
                )
            ).all()
        return [Binding(r.project, r.subject_type, r.subject_name, Role(r.role), r.created, r.created_by) for r in rows]

    def _subject(self, user: str, groups: tuple[str, ...]) -> Any:
        clauses = [and_(bindings.c.subject_type == "user", bindings.c.subject_name == user)]
        if groups:
            clauses.append(and_(bindings.c.subject_type == "group", bindings.c.subject_name.in_(groups)))
        return or_(*clauses)

    async def role_of(self, project: str, user: str, groups: tuple[str, ...] = ()) -> Role | None:
        """The highest role bound to the user or any of their groups in the project."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(bindings.c.role).where(bindings.c.project == project, self._subject(user, groups))
                )
            ).all()
        return highest([Role(r.role) for r in rows])

    async def projects_of(self, user: str, groups: tuple[str, ...] = ()) -> set[str]:
        async with self._db.read() as conn:
            rows = (await conn.execute(select(bindings.c.project).where(self._subject(user, groups)))).all()
        return {r.project for r in rows}

    async def claim_project(self, project: str, admin: str) -> Binding:
        """A new project's first binding, in one transaction with wiping what a deleted project of the same
        name left (bindings, access keys, revoked or not, even ones written while it was being deleted), so
        nothing of the old tenant carries over to the new one."""
        binding = Binding(project, "user", admin, Role.ADMIN, now().isoformat(), admin)
        async with self._db.begin() as conn:
            await conn.execute(delete(bindings).where(bindings.c.project == project))
            await conn.execute(delete(tokens).where(tokens.c.kind == "key", tokens.c.project == project))
            await conn.execute(
                insert(bindings).values(
                    project=project,
                    subject_type="user",
                    subject_name=admin,
                    role=Role.ADMIN.value,
                    created=binding.created,
                    created_by=admin,
                )
            )
        self.changes.publish(AccessChange(project=project))
        return binding

    async def forget_project(self, project: str) -> None:
        """A deleted project's bindings and access keys go with it."""
        async with self._db.begin() as conn:
            await conn.execute(delete(bindings).where(bindings.c.project == project))
            await conn.execute(
                update(tokens)
                .where(tokens.c.project == project, tokens.c.revoked.is_(None))
                .values(revoked=now().isoformat())
            )
        self.changes.publish(AccessChange(project=project))
