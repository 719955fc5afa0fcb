"""The runner protocol's models: what each side sends, what an older peer's frames mean, the mismatch message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vteam.protocol import (
    BATCH,
    PROTOCOL_VERSION,
    Ack,
    BatchLimits,
    Control,
    ControlAfter,
    Env,
    Hello,
    RunnerReport,
    UnsupportedProtocol,
    check,
    mismatch,
    offered,
    server_frame,
)


def test_frames_travel_in_the_wire_spelling_with_the_protocol() -> None:
    assert Hello(protocol=PROTOCOL_VERSION, last_seq=7).wire() == {"protocol": PROTOCOL_VERSION, "lastSeq": 7}
    assert ControlAfter.model_validate({"protocol": 3, "controlAfter": 9}).control_after == 9
    assert Ack(ack=4).wire() == {"ack": 4}


def test_a_peer_from_before_protocols_were_numbered_speaks_version_one() -> None:
    assert Hello.model_validate({"lastSeq": 2}).protocol == 1
    assert ControlAfter.model_validate({"controlAfter": 0}).protocol == 1


def test_server_frames_are_told_apart_and_unknown_ones_ignored() -> None:
    control = {"seq": 5, "ts": "t", "type": "CUSTOM", "data": {}}
    assert server_frame({"ack": 3}) == Ack(ack=3)
    frame = server_frame({"control": control})
    assert isinstance(frame, Control)
    assert frame.seq == 5
    assert server_frame({"somethingNew": 1}) is None
    with pytest.raises(ValidationError):
        server_frame({"ack": -1})


def test_a_mismatch_names_both_versions_and_the_side_to_upgrade() -> None:
    assert mismatch(1, 2) == (
        "runner protocol 1 is not supported by this backend (2); "
        "upgrade the runner image so both come from the same vTeam release"
    )
    assert "upgrade the backend" in mismatch(3, 2)
    check(PROTOCOL_VERSION)
    with pytest.raises(
        UnsupportedProtocol, match=f"runner protocol 99 is not supported by this backend \\({PROTOCOL_VERSION}\\)"
    ):
        check(99)


def test_a_report_refuses_fields_it_does_not_know_and_drops_pull_requests() -> None:
    report = RunnerReport.model_validate(
        {"final": True, "agentStatus": "idle", "repos": [{"url": "https://x/y.git", "pullRequestUrl": "https://evil"}]}
    )
    assert report.repos is not None
    assert report.repos[0].pull_request_url is None
    assert report.wire()["agentStatus"] == "idle"
    with pytest.raises(ValidationError):
        RunnerReport.model_validate({"phase": "Completed"})


def test_secret_names_are_told_by_one_rule() -> None:
    assert Env.is_secret(Env.RUNNER_TOKEN)
    assert Env.is_secret(Env.GIT_TOKEN)
    assert Env.is_secret(Env.SECRET_PREFIX + "API_KEY")
    assert not Env.is_secret(Env.AGENT_ENV_PREFIX + "API_KEY")
    assert all(name.startswith(Env.PREFIX) for name in Env.REQUIRED)


def test_a_backend_says_it_takes_batches_only_in_its_hello_to_a_runner_offering_them() -> None:
    limits = BatchLimits(max_events=10, max_bytes=2048)
    hello = Hello(protocol=PROTOCOL_VERSION, last_seq=3, batch=limits).wire()
    assert hello == {"protocol": PROTOCOL_VERSION, "lastSeq": 3, "batch": {"maxEvents": 10, "maxBytes": 2048}}
    assert Hello.model_validate(hello).batch == limits
    assert Hello.model_validate({"protocol": 1, "lastSeq": 3}).batch is None, "an older backend takes no batches"
    assert offered(f" {BATCH} , later-feature,") == {BATCH, "later-feature"}
    assert offered(None) == offered("") == frozenset()
