"""What the S3 event log's tests share: sessions the platform knows, and a count of the requests a client sends."""

from __future__ import annotations

from typing import Any

from vteam.events import Envelope

UID = "0a0a0a0a-1111-4111-8111-111111111111"
OTHER = "0b0b0b0b-2222-4222-8222-222222222222"
PLACES = {UID: ("team-a", "fix-login"), OTHER: ("team-b", "add-docs")}


async def place(uid: str) -> tuple[str, str] | None:
    return PLACES.get(uid)


def deltas(envelopes: list[Envelope]) -> list[str]:
    return [env.data.get("delta", env.type) for env in envelopes]


def seqs(envelopes: list[Envelope]) -> list[int]:
    return [env.seq for env in envelopes]


class Requests:
    """Counts the HTTP requests a client sends, of one operation (`PutObject`) or all."""

    def __init__(self, client: Any, operation: str = "") -> None:
        self.count = 0
        client.meta.events.register(f"before-send.s3{'.' + operation if operation else ''}", self._sent)

    def _sent(self, **_: Any) -> None:
        self.count += 1
