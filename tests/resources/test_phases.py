"""Session phase rules."""

from __future__ import annotations

import itertools

import pytest

from vteam.errors import InvalidTransition
from vteam.resources import TERMINAL, Phase, check_transition

NON_TERMINAL = [p for p in Phase if p not in TERMINAL]


def test_terminal_phases_are_exactly_the_four_final_ones() -> None:
    assert {p for p in Phase if p.terminal} == {Phase.COMPLETED, Phase.FAILED, Phase.STOPPED, Phase.TIMED_OUT}


@pytest.mark.parametrize(("current", "new"), [(c, n) for c, n in itertools.product(sorted(TERMINAL), Phase) if c != n])
def test_terminal_phase_never_changes(current: Phase, new: Phase) -> None:
    with pytest.raises(InvalidTransition, match=f"session is {current.value}, a final phase"):
        check_transition(current, new)


@pytest.mark.parametrize("phase", list(Phase))
def test_staying_put_is_allowed(phase: Phase) -> None:
    check_transition(phase, phase)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Phase.PENDING, Phase.CREATING),
        (Phase.PENDING, Phase.STOPPING),
        (Phase.PENDING, Phase.STOPPED),
        (Phase.CREATING, Phase.RUNNING),
        (Phase.RUNNING, Phase.COMPLETED),
        (Phase.RUNNING, Phase.FAILED),
        (Phase.RUNNING, Phase.TIMED_OUT),
        (Phase.RUNNING, Phase.STOPPING),
        (Phase.STOPPING, Phase.STOPPED),
        (Phase.STOPPING, Phase.FAILED),
    ],
)
def test_allowed_transitions(current: Phase, new: Phase) -> None:
    check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (Phase.PENDING, Phase.RUNNING),
        (Phase.PENDING, Phase.COMPLETED),
        (Phase.RUNNING, Phase.PENDING),
        (Phase.RUNNING, Phase.CREATING),
        (Phase.STOPPING, Phase.COMPLETED),
        (Phase.STOPPING, Phase.RUNNING),
        (Phase.STOPPING, Phase.TIMED_OUT),
    ],
)
def test_forbidden_transitions(current: Phase, new: Phase) -> None:
    with pytest.raises(InvalidTransition, match=f"cannot go from {current.value} to {new.value}"):
        check_transition(current, new)


def test_invalid_transition_maps_to_http_409() -> None:
    with pytest.raises(InvalidTransition) as caught:
        check_transition(Phase.PENDING, Phase.RUNNING)
    assert caught.value.status == 409
