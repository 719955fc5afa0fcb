"""Kubernetes label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x)`."""

from __future__ import annotations

import re
from collections.abc import Callable

from vteam.errors import InvalidInput

Requirement = Callable[[dict[str, str]], bool]

_SET = re.compile(r"^\s*(!?)([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)([\w./-]+)\s*$")


def parse(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Turn a selector string into a predicate on a label map; InvalidInput names the bad part."""
    if not selector or not selector.strip():
        return lambda labels: True
    requirements = [_requirement(part) for part in _split(selector)]
    return lambda labels: all(req(labels) for req in requirements)


def _split(selector: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _requirement(part: str) -> Requirement:
    if match := _SET.match(part):
        if match.group(1):
            raise InvalidInput(f"label selector part {part.strip()!r} negates a set; use 'key notin (...)' instead")
        key, op = match.group(2), match.group(3)
        values = {v.strip() for v in match.group(4).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQ.match(part):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(part):
        negate, key = match.groups()
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise InvalidInput(
        f"label selector part {part.strip()!r} is not understood; "
        "use key=value, key!=value, key, !key, key in (a,b) or key notin (a,b)"
    )
