"""The vTeam GitHub App: installation tokens minted per session, and users linking their installations.

Tokens are minted for exactly the repos a session pushes to (where they belong to the installation's
account), cached until five minutes before they expire, and re-minted at once when GitHub rejects one.
githubkit is imported by the first call that needs it, as in `vteam.forges.github`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from vteam.errors import Forbidden, InvalidInput, NotFound
from vteam.forges.base import RepoRef
from vteam.forges.github import GitHubForge, failure

if TYPE_CHECKING:
    from githubkit import GitHub

EARLY_RENEWAL = 300.0
STATE_TTL = 600.0
INSTALLATION_TTL = 300.0
"""How long a repo's installation is remembered: the lookup counts against the App's hourly rate limit."""


@dataclass(frozen=True)
class InstallationToken:
    token: str
    expires_at: float


class GitHubApp:
    def __init__(
        self,
        forge: GitHubForge,
        *,
        app_id: str,
        private_key: str,
        slug: str | None,
        client_id: str | None,
        client_secret: str | None,
        signing_key: bytes,
    ) -> None:
        self._forge = forge
        self._app_id = app_id
        self._private_key = private_key
        self.slug = slug
        self._client_id = client_id
        self._client_secret = client_secret
        self._signing_key = signing_key
        self._tokens: dict[tuple[int, tuple[str, ...]], InstallationToken] = {}
        self._minting = asyncio.Lock()
        self._used_states: dict[str, float] = {}
        self._installations: dict[str, tuple[int | None, float]] = {}
        self.minted = 0

    def _client(self, auth: Any) -> GitHub[Any]:
        client = self._forge.client(None)
        return client.with_auth(auth)

    def _app_client(self) -> GitHub[Any]:
        """A client acting as the App itself (a JWT signed with its private key)."""
        from githubkit import AppAuthStrategy

        return self._client(AppAuthStrategy(self._app_id, self._private_key, self._client_id, self._client_secret))

    async def installation_for(self, repo: RepoRef) -> int | None:
        """The App's installation on `repo` (None if not installed there), remembered for INSTALLATION_TTL."""
        key = repo.path.lower()
        cached = self._installations.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        from githubkit.exception import GitHubException, RequestFailed

        gh = self._app_client()  # githubkit's namespaces hold their client weakly: keep it alive
        try:
            response = await gh.rest.apps.async_get_repo_installation(repo.owner, repo.name)
        except RequestFailed as exc:
            self._installations.pop(key, None)
            if exc.response.status_code == 404:
                return None
            raise failure(exc, f"finding the App's installation on {repo.path}") from None
        except GitHubException as exc:
            raise failure(exc, f"finding the App's installation on {repo.path}") from None
        installation = int(response.json()["id"])
        self._installations[key] = (installation, time.monotonic() + INSTALLATION_TTL)
        return installation

    async def token(self, installation: int, repos: tuple[str, ...]) -> str:
        """An installation token limited to `repos` (names in the installation's account), from cache if fresh."""
        from githubkit.exception import GitHubException, RequestFailed

        key = (installation, tuple(sorted(set(repos))))
        async with self._minting:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at - EARLY_RENEWAL > time.time():
                return cached.token
            data: Any = {"repositories": list(key[1])} if key[1] else None
            gh = self._app_client()
            try:
                response = await gh.rest.apps.async_create_installation_access_token(installation, data=data)
            except GitHubException as exc:
                if isinstance(exc, RequestFailed) and exc.response.status_code in (401, 404):
                    self.forget(installation, repos)
                raise failure(exc, f"minting a token for installation {installation}") from None
            body = response.json()
            expires = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00")).timestamp()
            self._tokens[key] = InstallationToken(str(body["token"]), expires)
            self.minted += 1
            return str(body["token"])

    def forget(self, installation: int, repos: tuple[str, ...]) -> None:
        """Drop a token GitHub rejected, so the next call mints a new one."""
        self._tokens.pop((installation, tuple(sorted(set(repos)))), None)
        self._installations = {k: v for k, v in self._installations.items() if v[0] != installation}

    # Linking: the user installs the App (or picks an existing installation) and GitHub sends them back.

    def state_for(self, user: str) -> str:
        """An opaque, signed, expiring value that ties GitHub's redirect back to the user who started it."""
        payload = json.dumps({"u": user, "n": secrets.token_urlsafe(12), "e": time.time() + STATE_TTL}).encode()
        signature = hmac.new(self._signing_key, payload, hashlib.sha256).digest()
        return (
            base64.urlsafe_b64encode(payload).decode() + "." + base64.urlsafe_b64encode(signature).decode()
        ).replace("=", "")

    def install_url(self, state: str) -> str:
        if not self.slug:
            raise InvalidInput("VTEAM_GITHUB_APP_SLUG is not set, so vTeam cannot send you to the App's install page")
        return f"{self._forge.web_url}/apps/{self.slug}/installations/new?{urlencode({'state': state})}"

    def check_state(self, state: str, user: str) -> None:
        try:
            encoded, signature = state.split(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            claims = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise Forbidden("the link's state is not one vTeam issued; start linking again") from None
        expected = hmac.new(self._signing_key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given) or claims.get("u") != user:
            raise Forbidden("the link's state is not one vTeam issued to you; start linking again")
        now = time.time()
        if float(claims.get("e", 0)) < now:
            raise Forbidden("the link's state has expired; start linking again")
        # Spent by nonce, not by spelling: base64 decoding forgives stray characters.
        nonce = str(claims.get("n", ""))
        self._used_states = {n: t for n, t in self._used_states.items() if t > now}
        if not nonce or nonce in self._used_states:
            raise Forbidden("the link's state was already used; start linking again")
        self._used_states[nonce] = float(claims["e"])

    async def verify_installation(self, code: str, installation: int) -> str:
        """Exchange the OAuth code for the user's token and check that the installation is theirs; their login."""
        if not self._client_id or not self._client_secret:
            raise InvalidInput("VTEAM_GITHUB_APP_CLIENT_ID and _CLIENT_SECRET are needed to verify installations")
        from githubkit import OAuthWebAuthStrategy
        from githubkit.exception import GitHubException

        gh = self._client(OAuthWebAuthStrategy(self._client_id, self._client_secret, code))
        try:
            user = (await gh.rest.users.async_get_authenticated()).json()
            found = (await gh.rest.apps.async_list_installations_for_authenticated_user(per_page=100)).json()
        except GitHubException as exc:
            raise failure(exc, "verifying the installation") from None
        except Exception as exc:  # githubkit raises plain errors when GitHub refuses the code
            raise Forbidden(f"GitHub did not accept the authorization code: {type(exc).__name__}") from None
        if installation not in {int(i["id"]) for i in found.get("installations", [])}:
            raise NotFound(f"installation {installation} is not one {user['login']} can access")
        return str(user["login"])
