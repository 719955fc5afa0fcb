"""Assemble the embedded platform: database, store, event log, hub, tokens, vault, forges and controller."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import pwd
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vteam.auth import (
    ADMIN_USER,
    Accounts,
    AuditLog,
    Authenticator,
    CsrfTokens,
    EmbeddedAuthenticator,
    Identity,
    Role,
    RunnerTokens,
    Vault,
    keys,
    load_or_create,
)
from vteam.controller import Announced, Controller, LocalExecutor, PhaseWriter, StatusOnly, job
from vteam.controller.controller import ProjectSecret
from vteam.controller.local import RunnerUserError, check_runner_user, resolve_runner_user
from vteam.controller.prefork import RunnerUser
from vteam.db import Database, open_database
from vteam.errors import VteamError
from vteam.events import EventLog, Hub
from vteam.events.sqlite import SqliteEventLog
from vteam.forges import PROJECT_TOKEN, Forges, project_scope
from vteam.protocol import Env
from vteam.resources import CREATED_BY, AgenticSession
from vteam.services import SessionLife, Sessions, standard_checks
from vteam.services.access import Access
from vteam.services.isolation import Isolation, decide_isolation
from vteam.services.projects import Projects
from vteam.services.secrets import Secrets
from vteam.services.stream_slots import StreamSlots
from vteam.services.tenancy import Embedded, OnCluster, Tenancy
from vteam.settings import Settings
from vteam.store import ResourceStore, SqliteStore

if TYPE_CHECKING:
    from vteam.services.cluster import Cluster


@dataclass
class Platform:
    settings: Settings
    db: Database
    store: ResourceStore
    events: EventLog
    hub: Hub
    tokens: RunnerTokens
    authenticator: Authenticator
    controller: SessionLife
    vault: Vault
    forges: Forges
    accounts: Accounts
    audit: AuditLog
    csrf: CsrfTokens
    """The browser sessions' CSRF tokens (`api.web_edge`), keyed by the platform key."""
    isolation: Isolation
    """How agents are confined, decided once at start; shown by `vteam up` and the web UI, checked at creation."""
    home_lock: TextIO | None = None
    server_url: str = ""
    ready: bool = field(default=False)
    first_login: str | None = None
    """The one-time login link's token when this start created the first admin, to be shown once."""
    cluster: Cluster | None = None
    """Cluster mode's Kubernetes clients, access reviews and per-user stores; None in the embedded mode."""
    streams: StreamSlots = field(default_factory=StreamSlots)
    """The event streams each user or access key holds open, for `VTEAM_MAX_STREAMS_PER_CALLER`."""
    sessions: Sessions = field(init=False)
    """Every action on a session, with the admission checks this platform runs (`standard_checks`)."""
    projects: Projects = field(init=False)
    access: Access = field(init=False)
    secrets: Secrets = field(init=False)
    tenancy: Tenancy = field(init=False)
    """How this mode mirrors access and secrets (`Embedded` or `OnCluster`), chosen once here."""
    phases: PhaseWriter = field(init=False)
    """How this mode writes a phase: with its event in the embedded mode; the status alone in cluster mode,
    where the `PhaseRelay` is the one writer of phase events."""

    def __post_init__(self) -> None:
        self.phases = Announced(self.store, self.events, self.hub) if self.cluster is None else StatusOnly(self.store)
        self.tenancy = (
            Embedded(self.settings)
            if self.cluster is None
            else OnCluster(self.cluster, self.store, self.settings, keep=PROJECT_TOKEN)
        )
        self.projects = Projects(
            store=self.store,
            vault=self.vault,
            accounts=self.accounts,
            audit=self.audit,
            role_of=self.role_of,
            tenancy=self.tenancy,
        )
        self.access = Access(
            store=self.store, accounts=self.accounts, audit=self.audit, role_of=self.role_of, tenancy=self.tenancy
        )
        self.secrets = Secrets(
            store=self.store,
            vault=self.vault,
            audit=self.audit,
            settings=self.settings,
            role_of=self.role_of,
            tenancy=self.tenancy,
        )
        self.sessions = Sessions(
            store=self.store,
            store_for=self.store_for,
            events=self.events,
            hub=self.hub,
            life=lambda: self.controller,
            phases=self.phases,
            audit=self.audit,
            vault=self.vault,
            role_of=self.role_of,
            checks=standard_checks(
                store=self.store, settings=self.settings, vault=self.vault, admit=self.isolation.admit
            ),
        )

    async def role_of(self, identity: Identity, project: str) -> Role | None:
        """The caller's role in a project; None when they have none (or it is not their access key's project)."""
        if identity.admin:
            return Role.ADMIN
        if identity.kind == "key":
            return identity.role if identity.project == project else None
        if identity.kind != "user":
            return None
        if self.cluster is not None and identity.access_token:
            return await self.cluster.access.role_of(identity.access_token, project)
        return await self.accounts.role_of(project, identity.name, identity.groups)

    async def store_for(self, identity: Identity) -> ResourceStore:
        """The store as the caller: in cluster mode with their own Kubernetes token, so RBAC has the last word;
        the platform's own store for everyone else (runners, vTeam's own tokens, the embedded mode)."""
        if self.cluster is not None and identity.access_token:
            return await self.cluster.user_stores.get(identity.access_token)
        return self.store

    @classmethod
    async def open(cls, settings: Settings) -> Platform:
        settings.home.mkdir(parents=True, exist_ok=True)
        cluster_mode = settings.mode == "cluster"
        runner_user = None if cluster_mode else await _runner_user(settings)
        isolation = await decide_isolation(settings)
        # A runner user must cross the home to reach its workspace; it lists nothing and every file is 0600.
        settings.home.chmod(0o700 if runner_user is None else 0o711)
        home_lock = _lock_home(settings.home)
        db = await open_database(settings.database_path, synchronous=settings.sqlite_synchronous)
        hub = Hub()
        key = load_or_create(settings.key_path)
        tokens = RunnerTokens(key)
        # The vault's own key, then any previous ones (a rotation in progress), then the platform key,
        # which encrypted secrets before the vault had a key of its own.
        previous = keys.read_all(vault_previous(settings))
        vault = Vault(db, [keys.load_or_create(settings.vault_key_path), *previous, key])
        accounts = Accounts(db)
        first_login = await _first_admin(accounts, settings)
        admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
        authenticator = EmbeddedAuthenticator(
            tokens,
            accounts,
            admin_token=admin_token,
            trust_proxy=settings.trust_proxy_headers and settings.proxy_secret is not None,
            admin_groups=tuple(g.strip() for g in settings.admin_groups.split(",") if g.strip()),
        )
        platform: Platform
        cluster: Cluster | None = None
        controller: SessionLife
        store: ResourceStore
        events: EventLog
        authenticator_used: Authenticator = authenticator
        if cluster_mode:
            from vteam.services.cluster import open_cluster  # the Kubernetes client loads only in cluster mode

            cluster, store, events, authenticator_used, controller = await open_cluster(settings, authenticator, hub)
        else:
            store = SqliteStore(db)
            events = SqliteEventLog(db)
            controller = _controller(
                settings, store, events, hub, tokens, vault, accounts, runner_user, isolation, lambda: platform
            )
        platform = cls(
            settings=settings,
            db=db,
            store=store,
            events=events,
            hub=hub,
            tokens=tokens,
            authenticator=authenticator_used,
            controller=controller,
            vault=vault,
            forges=Forges(settings, vault, key),
            accounts=accounts,
            audit=AuditLog(db, key),
            csrf=CsrfTokens(key),
            isolation=isolation,
            home_lock=home_lock,
            first_login=first_login,
            cluster=cluster,
        )
        return platform

    async def start(self, server_url: str) -> None:
        self.server_url = server_url
        if self.cluster is not None:
            await self.cluster.start()
        await self.controller.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self.controller.stop()
        await self.forges.close()
        await self.store.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.db.close()
        if self.home_lock is not None:
            self.home_lock.close()


def _controller(
    settings: Settings,
    store: ResourceStore,
    events: EventLog,
    hub: Hub,
    tokens: RunnerTokens,
    vault: Vault,
    accounts: Accounts,
    runner_user: RunnerUser | None,
    isolation: Isolation,
    platform: Callable[[], Platform],
) -> Controller:
    """The embedded controller, running sessions as local runner processes."""
    runner_env = job.runner_env(settings) | isolation.runner_env(settings)
    runner_env[Env.REPO_FORBIDDEN_ROOTS] = json.dumps(list(job.forbidden_roots(settings)))
    if settings.git_ssh_key_file is not None:
        runner_env[Env.GIT_SSH_KEY_FILE] = str(settings.git_ssh_key_file.resolve())
    if settings.git_token is not None:
        runner_env[Env.GIT_TOKEN] = settings.git_token.get_secret_value()
    return Controller(
        store=store,
        events=events,
        hub=hub,
        tokens=tokens,
        executor_factory=lambda on_exit: LocalExecutor(
            settings.workspaces,
            grace=settings.stop_grace_seconds,
            on_exit=on_exit,
            command=settings.runner_command,
            prefork=settings.runner_prefork,
            user=runner_user,
        ),
        server_url=lambda: platform().server_url,
        runner_env=runner_env,
        agent_environ=dict(os.environ),
        max_running=settings.max_running_sessions,
        max_running_per_project=settings.max_running_sessions_per_project,
        resync_seconds=settings.resync_seconds,
        project_secrets=lambda project: _project_secrets(vault, project),
        token_minted=lambda project, name: _token_minted(platform(), project, name),
        refuses=lambda session: _isolation_refuses(settings, isolation, accounts, session),
    )


async def _project_secrets(vault: Vault, project: str) -> dict[str, ProjectSecret]:
    """A project's secrets with their scopes, for its runners; `GIT_TOKEN` stays with the backend, which hands
    it out per push."""
    scope = project_scope(project)
    found: dict[str, ProjectSecret] = {}
    for info in await vault.list(scope):
        if info.name != PROJECT_TOKEN and (value := await vault.get(scope, info.name)):
            found[info.name] = ProjectSecret(value, info.frameworks)
    return found


async def _isolation_refuses(
    settings: Settings, isolation: Isolation, accounts: Accounts, session: AgenticSession
) -> str | None:
    """Why the isolation in force would now refuse to create this session (`Isolation.admit`), judged by
    its creator, for the controller to check again when the runner is about to start."""
    framework = session.spec.framework
    if isolation.refusal(admin=False, framework=framework) is None:
        return None
    return isolation.refusal(admin=await _created_by_admin(settings, accounts, session), framework=framework)


async def _created_by_admin(settings: Settings, accounts: Accounts, session: AgenticSession) -> bool:
    """Whether the session's creator (its CREATED_BY, the caller's name) is a platform admin now, as
    `EmbeddedAuthenticator` decides it: the admin token's `admin`, or a user vTeam's accounts mark admin.
    An access key (`key:…`) or a runner (`runner:…`) never is (user names are DNS labels, without ':'); nor
    is a trusted proxy's person, whose admin came from groups that are not kept: refusing errs on the safe side."""
    creator = session.metadata.annotations.get(CREATED_BY, "")
    if creator == ADMIN_USER and settings.admin_token is not None:
        return True
    user = await accounts.get_user(creator) if creator else None
    return user is not None and user.admin


async def _token_minted(platform: Platform, project: str, name: str) -> None:
    await platform.audit.record(
        actor="controller", project=project, action="runner_token.mint", target=f"session/{name}"
    )


async def _first_admin(accounts: Accounts, settings: Settings) -> str | None:
    """On the very first start, an admin user and a one-time login link for them."""
    if await accounts.any_user():
        return None
    await accounts.create_user(ADMIN_USER, display_name="Administrator", admin=True)
    if settings.admin_token is not None:
        return None
    _, secret = await accounts.issue(
        "login",
        name="first sign-in",
        created_by="vteam up",
        user=ADMIN_USER,
        ttl=timedelta(minutes=max(settings.login_link_minutes, 24 * 60)),
    )
    return secret


async def _runner_user(settings: Settings) -> RunnerUser | None:
    """The separate OS user runners run as: the one named, or with `auto` the conventional one where it works."""
    wanted = settings.runner_user.strip()
    if wanted.lower() in ("", "none"):
        return None
    if wanted.lower() != "auto":
        user = resolve_runner_user(wanted)
        assert user is not None
        await asyncio.to_thread(check_runner_user, user, settings.home)
        return user
    try:
        pwd.getpwnam(AUTO_RUNNER_USER)
    except KeyError:
        user = None
    else:
        try:
            user = resolve_runner_user(AUTO_RUNNER_USER)
            if user is not None:
                await asyncio.to_thread(check_runner_user, user, settings.home)
        except RunnerUserError as exc:
            log.warning("runners run as the platform's own user: %s", exc.detail)
            return None
    if user is None:
        log.info("runners run as the platform's own user (create %r, as root, to separate them)", AUTO_RUNNER_USER)
    return user


def vault_previous(settings: Settings) -> Path:
    return settings.home / "vault.key.previous"


async def rotate_vault_key(platform: Platform) -> int:
    """A new vault key: the old ones stay readable (in a file) until every value is re-encrypted.

    One rotation at a time: a second waits for the first (`vteam up` holds its home alone, so the process
    lock is enough). A failed rotation keeps every old key, on disk and in memory."""
    async with platform.vault.rotation:
        return await _rotate(platform.settings, platform.vault)


async def _rotate(settings: Settings, vault: Vault) -> int:
    new = secrets.token_bytes(32)
    previous = vault_previous(settings)

    def write_keys() -> None:
        old = keys.load_or_create(settings.vault_key_path)
        keys.replace(previous, old, *keys.read_all(previous))
        keys.replace(settings.vault_key_path, new)

    await asyncio.to_thread(write_keys)
    count = await vault.rotate(new)
    await asyncio.to_thread(previous.unlink, missing_ok=True)
    return count


def _lock_home(home: Path) -> TextIO:
    """One `vteam up` per home: a second would adopt the first one's runners and race its writes."""
    handle = (home / "vteam.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise HomeInUse(f"another vteam up is already using {home}") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


AUTO_RUNNER_USER = "vteam-runner"
log = logging.getLogger(__name__)


class HomeInUse(VteamError):
    """The data folder is held by another running `vteam up`."""
