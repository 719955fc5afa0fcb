"""Replace secret values wherever they would leave the runner: events, reports, logs."""

from __future__ import annotations

import json
from typing import Any

MASK = "***"


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        if not self._secrets:
            return value
        raw = json.dumps(value, ensure_ascii=False)
        if not any(secret in raw for secret in self._secrets):
            return value
        return json.loads(self.text(raw))
