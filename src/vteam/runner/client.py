"""The runner's HTTP client for its own session's endpoints, patient across server restarts."""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import certifi
import httpx

from vteam.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, RunnerReport
from vteam.resources import STORED, AgenticSession
from vteam.runner.config import RunnerConfig
from vteam.runner.redact import Redactor

# Built at import, so runners forked from the zygote inherit it instead of spending ~40 ms each.
TLS = ssl.create_default_context(cafile=certifi.where())


FINAL_REPORT_SECONDS = 600.0


class RunnerApiError(Exception):
    """The API refused a runner request (not a network failure)."""


class RunnerApi:
    def __init__(self, config: RunnerConfig, redactor: Redactor) -> None:
        self._config = config
        self._redactor = redactor
        self._http = httpx.AsyncClient(
            base_url=config.server,
            headers={"Authorization": f"Bearer {config.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
            timeout=httpx.Timeout(30.0, connect=5.0),
            verify=TLS,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def get_session(self) -> AgenticSession:
        response = await self._request("GET", self._config.session_path)
        return AgenticSession.model_validate(response.json(), context=STORED)

    async def report(self, report: RunnerReport) -> None:
        """Post a status report for this session, with every secret the runner knows redacted from it.

        The final report waits while the server opens the change set's pull requests.
        """
        timeout = httpx.Timeout(FINAL_REPORT_SECONDS, connect=5.0) if report.final else None
        kwargs: dict[str, Any] = {"timeout": timeout} if timeout else {}
        path = self._config.session_path + "/runner/status"
        await self._request("POST", path, json=self._redactor.data(report.wire()), **kwargs)

    async def push_targets(self, repos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Where each repo's branch goes (the repo, or the user's fork) and the token to push it with."""
        response = await self._request(
            "POST",
            self._config.session_path + "/runner/push-targets",
            json={"repos": repos},
            timeout=httpx.Timeout(FINAL_REPORT_SECONDS, connect=5.0),
        )
        targets: list[dict[str, Any]] = response.json()["repos"]
        for target in targets:
            if target.get("token"):
                self._redactor.add(str(target["token"]))
        return targets

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self._config.reconnect_seconds
        delay = 0.2
        while True:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 500 and time.monotonic() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.is_error:
                detail = (
                    response.json().get("detail")
                    if response.headers.get("content-type", "").endswith("json")
                    else response.text
                )
                raise RunnerApiError(f"{method} {path}: {response.status_code} {detail}")
            return response
