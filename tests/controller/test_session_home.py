"""The end-of-session wipe of an agent's HOME and temp: only what a continue needs stays, without secrets, and
nothing the agent left (links, FIFOs, hard links, deep trees) makes it touch anything outside."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from vteam.controller.session_home import MAX_KEPT, scrub

SECRET = "sk-live-0123456789abcdef"
KEEP = (".claude/projects/*/*.jsonl", ".mini-swe-agent-vteam/*.json")


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "home").mkdir(parents=True)
    (tmp_path / "ws" / "tmp").mkdir()
    return tmp_path / "ws"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the workspace, holding the secret, that the agent tries to get the wipe to touch."""
    return _write(tmp_path / "outside" / "vault.key", f"key={SECRET}\n")


def _scrub(workspace: Path, keep: tuple[str, ...] = KEEP, secrets: tuple[str, ...] = (SECRET,)) -> None:
    """The wipe in a thread: a FIFO it opened would block it, so a wipe that does not end fails the test."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scrub(workspace, keep, secrets)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the wipe blocked"
    assert errors == []


def test_only_the_kept_files_stay_and_their_folders(workspace: Path) -> None:
    home = workspace / "home"
    _write(home / ".claude/projects/-work-repo/abc.jsonl", '{"type":"user"}\n')
    _write(home / ".claude/projects/-work-repo/abc/subagents/x.jsonl", "{}\n")
    _write(home / ".claude/settings.json", "{}")
    _write(home / ".claude.json", "{}")
    _write(home / ".codex/shell_snapshots/1.sh", f"export OPENAI_API_KEY={SECRET}\n")
    _write(home / ".mini-swe-agent-vteam/c1.json", "[]")
    _write(home / ".mini-swe-agent-vteam/c1.json.bak", "[]")
    _write(home / "notes", "hello")
    (home / ".cache/empty/deeper").mkdir(parents=True)
    _scrub(workspace)
    assert _files(home) == [".claude/projects/-work-repo/abc.jsonl", ".mini-swe-agent-vteam/c1.json"]
    assert sorted(p.name for p in home.iterdir()) == [".claude", ".mini-swe-agent-vteam"]
    assert sorted(p.name for p in (home / ".claude").iterdir()) == ["projects"]
    assert (home / ".claude/projects/-work-repo/abc.jsonl").read_text() == '{"type":"user"}\n'


def test_nothing_is_kept_without_globs_and_home_stays(workspace: Path) -> None:
    _write(workspace / "home/.claude/projects/p/a.jsonl", "{}")
    _write(workspace / "home/.bash_history", f"echo {SECRET}")
    _scrub(workspace, keep=())
    assert list((workspace / "home").iterdir()) == []


def test_the_temp_folder_goes_entirely(workspace: Path) -> None:
    _write(workspace / "tmp/x", SECRET)
    _write(workspace / "tmp/a/b/c/d", SECRET)
    _scrub(workspace)
    assert not (workspace / "tmp").exists()


def test_secrets_are_replaced_in_kept_files(workspace: Path) -> None:
    quoted = 'pa"ss\\wörd-42'
    transcript = workspace / "home/.claude/projects/p/t.jsonl"
    _write(transcript, json.dumps({"out": f"key {SECRET} and {quoted}"}) + "\n" + f"raw {SECRET}\n")
    transcript.chmod(0o640)
    before = transcript.stat()
    clean = _write(workspace / "home/.claude/projects/p/clean.jsonl", "nothing secret: abc\n")
    clean_inode = clean.stat().st_ino
    _scrub(workspace, secrets=(SECRET, quoted, "abc"))
    text = transcript.read_text()
    assert SECRET not in text
    assert 'pa\\"ss' not in text
    assert "w\\u00f6rd" not in text
    assert json.loads(text.splitlines()[0]) == {"out": "key [redacted] and [redacted]"}
    assert text.splitlines()[1] == "raw [redacted]"
    assert (transcript.stat().st_mode & 0o777, transcript.stat().st_uid) == (0o640, before.st_uid)
    # A value shorter than four characters would mangle ordinary text: it is left alone.
    assert clean.read_text() == "nothing secret: abc\n"
    assert clean.stat().st_ino == clean_inode, "a file with no secret is not rewritten"
    assert [p.name for p in transcript.parent.iterdir() if p.name.startswith(".vteam")] == []


def test_a_kept_file_named_after_a_secret_goes(workspace: Path) -> None:
    _write(workspace / f"home/.mini-swe-agent-vteam/{SECRET}.json", "[]")
    _write(workspace / f"home/.claude/projects/{SECRET}/a.jsonl", "{}")
    _scrub(workspace)
    assert _files(workspace / "home") == []


def test_links_are_removed_as_links_and_what_they_point_at_is_untouched(
    workspace: Path, outside: Path, tmp_path: Path
) -> None:
    home = workspace / "home"
    (home / ".claude/projects/p").mkdir(parents=True)
    (home / ".claude/projects/p/stolen.jsonl").symlink_to(outside)
    (home / ".claude/projects/q").symlink_to(outside.parent, target_is_directory=True)
    (home / ".mini-swe-agent-vteam").symlink_to(outside.parent, target_is_directory=True)
    (home / "dangling").symlink_to(tmp_path / "nowhere")
    (workspace / "tmp/up").symlink_to(outside.parent, target_is_directory=True)
    _write(outside.parent / "c.json", SECRET)
    (outside.parent / "a.jsonl").write_text(SECRET)
    _scrub(workspace)
    assert _files(home) == []
    assert not (workspace / "tmp").exists()
    assert outside.read_text() == f"key={SECRET}\n"
    assert sorted(p.name for p in outside.parent.iterdir()) == ["a.jsonl", "c.json", "vault.key"]
    assert (outside.parent / "a.jsonl").read_text() == SECRET


def test_a_temp_folder_or_home_that_is_a_link_is_removed_as_a_link(workspace: Path, outside: Path) -> None:
    (workspace / "tmp").rmdir()
    (workspace / "tmp").symlink_to(outside.parent, target_is_directory=True)
    (workspace / "home").rmdir()
    (workspace / "home").symlink_to(outside.parent, target_is_directory=True)
    _scrub(workspace)
    assert not (workspace / "tmp").is_symlink()
    assert not (workspace / "tmp").exists()
    assert not (workspace / "home").is_symlink()
    assert outside.read_text() == f"key={SECRET}\n"


def test_a_hard_link_to_an_outside_file_is_removed_and_the_file_untouched(workspace: Path, outside: Path) -> None:
    kept_name = workspace / "home/.claude/projects/p/t.jsonl"
    kept_name.parent.mkdir(parents=True)
    try:
        os.link(outside, kept_name)
    except OSError as exc:
        pytest.fail(f"tmp_path cannot hold a hard link here: {exc}")
    _scrub(workspace)
    assert not kept_name.exists()
    assert outside.read_text() == f"key={SECRET}\n"
    assert outside.stat().st_nlink == 1


def test_fifos_are_removed_without_being_opened(workspace: Path) -> None:
    (workspace / "home/.claude/projects/p").mkdir(parents=True)
    os.mkfifo(workspace / "home/.claude/projects/p/t.jsonl")
    os.mkfifo(workspace / "home/pipe")
    os.mkfifo(workspace / "tmp/pipe")
    _scrub(workspace)
    assert _files(workspace / "home") == []
    assert not (workspace / "tmp").exists()


def test_a_kept_file_too_large_to_redact_is_removed(workspace: Path) -> None:
    big = workspace / "home/.mini-swe-agent-vteam/big.json"
    big.parent.mkdir(parents=True)
    with big.open("wb") as handle:
        handle.truncate(MAX_KEPT + 1)
    small = _write(workspace / "home/.mini-swe-agent-vteam/small.json", "[]")
    _scrub(workspace)
    assert not big.exists()
    assert small.exists()


def _deep(top: Path, depth: int) -> None:
    """A chain of `depth` folders, made relative to descriptors: its full path is far beyond PATH_MAX."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d" * 200, dir_fd=fd)
            child = os.open("d" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as leaf:
            leaf.write(SECRET)
    finally:
        os.close(fd)


def test_a_tree_too_deep_for_recursion_and_paths_is_removed(workspace: Path) -> None:
    _deep(workspace / "home/.claude/projects", 1500)
    _deep(workspace / "tmp", 1500)
    _write(workspace / "home/.claude/projects/p/a.jsonl", "{}")
    _scrub(workspace)
    assert _files(workspace / "home") == [".claude/projects/p/a.jsonl"]
    assert not (workspace / "tmp").exists()


def test_a_folder_made_unreadable_is_still_wiped(workspace: Path) -> None:
    locked = workspace / "home/.codex/shell_snapshots"
    _write(locked / "1.sh", SECRET)
    locked.chmod(0)
    try:
        _scrub(workspace, keep=(".codex/sessions/*/*/*/rollout-*.jsonl",))
    finally:
        if locked.exists():
            locked.chmod(0o700)
    assert _files(workspace / "home") == []


def test_a_workspace_already_gone_is_no_error(tmp_path: Path) -> None:
    _scrub(tmp_path / "gone")
    assert not (tmp_path / "gone").exists()
