"""Replace secret values wherever they would leave the runner: events, reports, logs."""

from __future__ import annotations

from typing import Any

MASK = "***"


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add(self, secret: str) -> None:
        """Redact one more secret from now on: a token the runner was handed while it ran."""
        if len(secret) >= 4 and secret not in self._secrets:
            self._secrets = sorted({*self._secrets, secret}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        """Redact every string in a JSON-like value (keys too); a value with no secret comes back as is."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            items = [(self.data(k), self.data(v)) for k, v in value.items()]
            if all(nk is k and nv is v for (nk, nv), (k, v) in zip(items, value.items(), strict=True)):
                return value
            return dict(items)
        if isinstance(value, list | tuple):
            new = [self.data(v) for v in value]
            return value if all(n is o for n, o in zip(new, value, strict=True)) else new
        return value
