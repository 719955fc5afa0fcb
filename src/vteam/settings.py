"""One settings object for the whole platform, read from `VTEAM_*` environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of `vteam up`; tests build their own instance instead of touching the environment."""

    model_config = SettingsConfigDict(env_prefix="VTEAM_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(Path(".vteam"), description="Folder for the database, workspaces and keys.")
    host: str = Field("127.0.0.1", description="Address `vteam up` listens on.")
    port: int = Field(8080, ge=0, le=65535, description="Port `vteam up` listens on (0 picks a free one).")
    public_url: str | None = Field(None, description="URL runners use to reach the API; defaults to http://host:port.")
    max_running_sessions: int = Field(
        4, ge=1, description="Sessions whose runners may run at once; the rest stay Pending, queued."
    )
    max_running_sessions_per_project: int | None = Field(
        None,
        ge=1,
        description="Sessions of one project whose runners may run at once, so one project cannot take every "
        "slot (a project's own maxRunningSessions overrides it); default: half the platform's limit, rounded up.",
    )
    max_event_bytes: int = Field(
        1024 * 1024,
        ge=4096,
        description="Bytes one stored event may hold; a larger agent text or tool output is cut to this, "
        "with a note saying so.",
    )
    max_session_event_bytes: int = Field(
        64 * 1024 * 1024,
        ge=65536,
        description="Bytes of events one session may store; past it, further output is dropped and one "
        "event says so; the runner's lifecycle events (run end, pushes, diffs) may add one more max_event_bytes.",
    )
    runner_command: list[str] | None = Field(
        None, description="Command that starts a runner (JSON list); default: this Python's `-m vteam.runner`."
    )
    runner_prefork: bool = Field(
        True, description="Fork runners from a warm process (fast start); false starts each as a new process."
    )
    runner_user: str = Field(
        "auto",
        description="OS user runners (and all they start) run as; needs `vteam up` as root. `auto`: the user "
        "`vteam-runner` where it exists and can run vTeam, else the platform's own; `none`: the platform's.",
    )
    isolation: Literal["sandbox", "none"] = Field(
        "sandbox",
        description="How agents are confined on this machine. `sandbox`: each agent process runs in a "
        "bubblewrap sandbox of its own (user, pid, mount, network, IPC namespaces) that sees only its session; "
        "where none can be made, only platform admins may run the `script` framework. `none`: agents run "
        "unconfined, as the runner's user, on purpose (one trusted team only).",
    )
    sandbox_allow_hosts: str = Field(
        "",
        description="Hosts (`host` or `host:port`, comma- or space-separated) agents may reach through the "
        "sandbox's proxy although they are private or loopback addresses (a model gateway on the LAN); "
        "model base URLs the platform configures are allowed without being listed.",
    )
    idle_timeout_seconds: float = Field(
        1800,
        gt=0,
        description="Seconds an interactive session waits for input before it ends (per session: idleTimeout).",
    )
    stall_timeout_seconds: float = Field(
        900, gt=0, description="Seconds an agent may go without any output before its session fails as stalled."
    )
    stop_grace_seconds: float = Field(
        2.0, ge=0, le=30, description="Seconds a runner gets after SIGTERM before SIGKILL."
    )
    resync_seconds: float = Field(
        15.0, gt=0, description="How often the controller re-examines every session as a safety net."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite `synchronous` pragma: FULL keeps every acknowledged write through a power loss (one "
        "fsync per group commit), NORMAL through a process crash only.",
    )
    git_author_name: str = Field("vTeam", description="Author name of the runner's commits.")
    git_author_email: str = Field("vteam@localhost", description="Author e-mail of the runner's commits.")
    git_token: SecretStr | None = Field(
        None, description="Token runners give git over HTTPS (through GIT_ASKPASS, never in URLs)."
    )
    git_token_hosts: str = Field(
        "", description="Hosts (comma- or space-separated) git may send `VTEAM_GIT_TOKEN` to; empty: any host."
    )
    git_ssh_key_file: Path | None = Field(
        None, description="Private key runners give ssh for ssh:// and user@host:path remotes."
    )
    git_username: str = Field("x-access-token", description="User name paired with `VTEAM_GIT_TOKEN`.")
    repo_allow_hosts: str = Field(
        "",
        description="Hosts, addresses or CIDR ranges (comma-separated) sessions' repositories may be on although "
        "they are loopback, link-local, private or otherwise not public; empty: public addresses only.",
    )
    repo_service_ranges: str = Field(
        "10.96.0.0/12",
        description="The cluster's service network (CIDR ranges, comma-separated): refused for repositories "
        "even where an allowed range holds it (only an exact host or address in `repo_allow_hosts` passes).",
    )
    admin_token: SecretStr | None = Field(
        None, description="Seeds a platform-admin API token, for automation and recovery; never logged."
    )
    trust_proxy_headers: bool = Field(
        False,
        description="Take the identity from an OAuth proxy's X-Forwarded-User/-Groups headers "
        "(only behind a proxy that sets them, as on OpenShift); needs `VTEAM_PROXY_SECRET`.",
    )
    proxy_secret: SecretStr | None = Field(
        None,
        description="Secret the proxy proves itself with, in X-Vteam-Proxy-Secret or as the password of its "
        "Basic auth (oauth-proxy's --basic-auth-password); without it forwarded identity headers are dropped.",
    )
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="Addresses (comma-separated) a proxy must also come from, with `trust_proxy_headers`; "
        "empty: any. An extra restriction only: the proof is `VTEAM_PROXY_SECRET`.",
    )
    admin_groups: str = Field(
        "vteam-admins", description="Groups (comma-separated) whose members are platform admins, via the proxy."
    )
    session_hours: float = Field(12.0, gt=0, description="How long a browser sign-in lasts.")
    allowed_origins: str = Field(
        "",
        description="Comma-separated browser origins (e.g. `https://vteam.apps.example.com`) whose pages may send "
        "cookie-signed writes besides the server's own (its `Host`, or `VTEAM_PUBLIC_URL`): for a proxy in front "
        "that rewrites `Host` or terminates TLS without saying so.",
    )
    login_link_minutes: float = Field(60.0, gt=0, description="How long a one-time login link works.")
    max_body_bytes: int = Field(2_097_152, ge=1024, description="Largest request body the API accepts (413 above).")
    project_secrets_max_bytes: int = Field(
        524_288,
        ge=1024,
        le=1_048_576,
        description="Bytes (UTF-8) all of one project's secret values may hold together: they reach its agents as "
        "environment, which Linux bounds; a write past it is refused (422).",
    )
    project_secrets_max_count: int = Field(
        100, ge=1, le=1000, description="Secrets one project may hold; a new one past it is refused (422)."
    )
    write_rate_per_minute: int = Field(
        240, ge=0, description="Writes (POST, PUT, PATCH, DELETE) each identity may make a minute; 0: no limit."
    )
    max_ws_frame_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest WebSocket message a user (not a runner) may send; larger ones close the socket with 1009.",
    )
    max_streams_per_caller: int = Field(
        20, ge=0, description="Event streams (SSE and WebSocket) one user or access key may hold open; 0: no limit."
    )
    stream_recheck_seconds: float = Field(
        5.0, gt=0, description="How often an open stream re-checks its caller's credential and role when idle."
    )
    github_url: str = Field(
        "https://github.com", description="Web URL of the GitHub (or GitHub Enterprise) whose repos get pull requests."
    )
    github_api_url: str | None = Field(
        None, description="REST API URL of that GitHub; default api.github.com, or <github_url>/api/v3 for Enterprise."
    )
    github_app_id: str | None = Field(None, description="The vTeam GitHub App's id (App installation tokens).")
    github_app_slug: str | None = Field(None, description="The App's URL name, for its installation page.")
    github_app_private_key: SecretStr | None = Field(None, description="The App's private key (PEM).")
    github_app_private_key_file: Path | None = Field(None, description="File holding the App's private key (PEM).")
    github_app_client_id: str | None = Field(None, description="The App's OAuth client id (linking installations).")
    github_app_client_secret: SecretStr | None = Field(None, description="The App's OAuth client secret.")
    github_webhook_secret: SecretStr | None = Field(None, description="Secret GitHub signs the App's webhooks with.")
    gitlab_url: str = Field("https://gitlab.com", description="URL of the GitLab whose repos get merge requests.")
    forge_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of each call to a forge's API.")
    forge_interactive_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Timeout of a forge call a person waits on (token checks, the repo browser); never retried.",
    )
    forge_max_wait_seconds: float = Field(
        60.0, ge=0, description="Longest wait for a forge's rate limit to reset before a request gives up with 429."
    )
    forge_fork_wait_seconds: float = Field(60.0, gt=0, description="Longest wait for a new fork to become ready.")
    web_modules: Path | None = Field(
        None, description="node_modules holding the web UI's htmx; default: .web/node_modules beside the source."
    )
    mode: Literal["embedded", "cluster"] = Field(
        "embedded",
        description="`embedded`: SQLite and local runner processes on one machine; `cluster`: custom resources, "
        "Jobs and an S3 event log on Kubernetes.",
    )
    kubeconfig: Path | None = Field(
        None, description="Cluster mode: kubeconfig file; default: the pod's service account, else ~/.kube/config."
    )
    namespace: str = Field("vteam", description="Cluster mode: the namespace vTeam's own backend and operator run in.")
    runner_image: str = Field("vteam:0.1.0", description="Cluster mode: the image of runner Jobs.")
    runner_service_account: str = Field(
        "vteam-runner", description="Cluster mode: the service account runner pods run as (it needs no API rights)."
    )
    runner_uid: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1001,
        description="Cluster mode: the user, group and fsGroup id runner pods run as (vTeam's image has user 1001); "
        "`auto`: none set, for OpenShift, whose restricted SCC assigns one from the namespace's range.",
    )
    runner_cpu_request: str = Field(
        "250m", description="Cluster mode: a runner's CPU request unless its project sets one."
    )
    runner_memory_request: str = Field("512Mi", description="Cluster mode: a runner's memory request (default).")
    runner_cpu_limit: str = Field("2", description="Cluster mode: a runner's CPU limit unless its project sets one.")
    runner_memory_limit: str = Field("4Gi", description="Cluster mode: a runner's memory limit (default).")
    job_ttl_seconds: int = Field(
        3600, ge=0, description="Cluster mode: how long a finished runner Job (and its logs) stays before cleanup."
    )
    access_cache_seconds: float = Field(
        10.0, ge=0, description="Cluster mode: how long an access review's answer is reused for the same caller."
    )
    s3_bucket: str | None = Field(None, description="Cluster mode: the bucket of the event log.")
    s3_prefix: str = Field("", description="Key prefix inside the bucket, for sharing one bucket.")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, say); default: AWS S3.")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="S3 access key; default: the AWS credential chain (environment, pod identity)."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret key, with `s3_access_key_id`.")
    event_hot_events: int = Field(
        2000, ge=0, description="Recent events per session kept in memory, so live readers need no object reads."
    )
    event_retention_days: int | None = Field(
        None, ge=1, description="Delete a session's S3 events this many days after they were written; unset: keep."
    )
    log_format: Literal["text", "json"] = Field("text", description="`json` for structured logs.")
    log_level: str = Field("INFO", description="Root log level.")

    @field_validator("repo_service_ranges")
    @classmethod
    def _cidr_ranges(cls, value: str) -> str:
        """A typo here would otherwise surface as a failed session create, long after start-up."""
        for entry in value.replace(",", " ").split():
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an address range (CIDR), e.g. 10.96.0.0/12") from None
        return value

    @property
    def database_path(self) -> Path:
        return self.home / "vteam.db"

    @property
    def workspaces(self) -> Path:
        return self.home / "workspaces"

    @property
    def vault_key_path(self) -> Path:
        return self.home / "vault.key"

    @property
    def key_path(self) -> Path:
        return self.home / "secret.key"
