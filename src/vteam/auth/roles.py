"""Project roles: view < edit < admin. Platform admins hold every role in every project."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    VIEW = "view"
    EDIT = "edit"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.VIEW: 1, Role.EDIT: 2, Role.ADMIN: 3}


def highest(roles: list[Role]) -> Role | None:
    return max(roles, key=lambda r: r.rank) if roles else None
