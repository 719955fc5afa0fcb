"""Per-session runner tokens: an HMAC over the session's identity, so a restart can re-derive them.

A token names one session (project, name, uid). The API accepts it only on that session's
runner endpoints and only while the session is not in a final phase, so it dies with the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from vteam.errors import Unauthorized

PREFIX = "vtr."


@dataclass(frozen=True)
class RunnerClaim:
    project: str
    session: str
    uid: str


class RunnerTokens:
    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"vteam-runner-token\0" + key).digest()

    def mint(self, project: str, session: str, uid: str) -> str:
        subject = f"{project}/{session}/{uid}".encode()
        mac = hmac.new(self._key, subject, hashlib.sha256).digest()
        return PREFIX + _b64(subject) + "." + _b64(mac)

    def verify(self, token: str) -> RunnerClaim:
        try:
            subject_part, mac_part = token.removeprefix(PREFIX).split(".")
            subject = _unb64(subject_part)
            mac = _unb64(mac_part)
        except ValueError as exc:
            raise Unauthorized("runner token is malformed") from exc
        expected = hmac.new(self._key, subject, hashlib.sha256).digest()
        canonical = _b64(subject) == subject_part and _b64(mac) == mac_part
        if not hmac.compare_digest(mac, expected) or not canonical:
            raise Unauthorized("runner token is not valid")
        project, session, uid = subject.decode().split("/")
        return RunnerClaim(project=project, session=session, uid=uid)

    @staticmethod
    def looks_like(token: str) -> bool:
        return token.startswith(PREFIX)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
