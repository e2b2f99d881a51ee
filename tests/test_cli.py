"""The operator's commands through the real console script: bad input exits 2, writes nothing, says the fix."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import pytest

from pipeline.cli import main

PIPELINE = str(Path(sys.executable).parent / "pipeline")


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`pipeline ARGS` in this process (a subprocess per call costs seconds); the console script itself is
    exercised by test_console_script_runs."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env, clear=True), redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["pipeline", *args], code, out.getvalue(), err.getvalue())


def test_console_script_runs(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    out = subprocess.run([PIPELINE, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "revision" in out.stdout
    out = subprocess.run([PIPELINE, "enqueue", "--account", "nobody", "--text", "hi"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "not registered" in out.stderr


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env["PIPELINE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env["PIPELINE_STATE_DIR"] = str(tmp_path / "state")
    session = tmp_path / "session.json"
    session.write_text(json.dumps({"cookies": [{"name": "auth_token", "value": "s3cret"}], "origins": []}))
    assert run("db", "upgrade", env=env).returncode == 0
    assert run("accounts", "add", "alice", "--storage-state", str(session), env=env).returncode == 0
    return env


def queue_json(env: dict[str, str]) -> list[dict]:
    out = run("queue", "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_commands_without_schema_say_how_to_create_it(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    out = run("queue", env=env)
    assert out.returncode == 2
    assert "pipeline db upgrade" in out.stderr


def test_session_file_is_stored_0600_and_never_printed(cli_env: dict[str, str], tmp_path: Path) -> None:
    stored = tmp_path / "state" / "sessions" / "alice.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    listing = run("accounts", "list", env=cli_env)
    assert "alice" in listing.stdout and "s3cret" not in listing.stdout + listing.stderr


def test_enqueue_single_thread_reply_and_file(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert run("enqueue", "--account", "alice", "--text", "hello 你好 https://example.com/x", env=cli_env).returncode == 0
    assert run("enqueue", "--account", "alice", "--thread", "one", "two", "--at", "2036-12-01T09:00:00+02:00",
               env=cli_env).returncode == 0
    assert run("enqueue", "--account", "alice", "--text", "a reply", "--reply-to", "1234567890123456789",
               env=cli_env).returncode == 0
    lines = tmp_path / "items.jsonl"
    lines.write_text('{"account": "alice", "text": "from a file", "topic": "ops"}\n'
                     '{"account": "alice", "parts": ["f1", "f2"], "at": "2036-12-02T10:00:00Z"}\n')
    assert run("enqueue", "--file", str(lines), env=cli_env).returncode == 0
    items = queue_json(cli_env)
    assert [i["kind"] for i in items][:3] == ["single", "reply", "single"] or len(items) == 5
    by_kind = {i["kind"] for i in items}
    assert by_kind == {"single", "thread", "reply"}
    thread = next(i for i in items if i.get("parts") == ["one", "two"])
    assert thread["scheduled_at"] == "2036-12-01T07:00:00Z" and thread["state"] == "queued"
    assert all({"id", "account", "kind", "state", "scheduled_at", "tweet_ids", "last_error"} <= set(i) for i in items)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "alice", "--text", "x" * 281], "text is 281 weighted characters; the limit is 280"),
        (["--account", "alice", "--thread", "ok", "y" * 291], "part 2 is 291 weighted characters; the limit is 280"),
        (["--account", "alice", "--text", "你" * 141], "text is 282 weighted characters; the limit is 280"),
        (["--account", "bob", "--text", "hi"], "account 'bob' is not registered"),
        (["--account", "alice", "--text", "hi", "--at", "tomorrow"], "is not an ISO-8601 time"),
        (["--account", "alice", "--text", "hi", "--at", "2026-12-01T09:00:00"], "has no time zone"),
        (["--account", "alice", "--thread", "only one"], "a thread has 2 to 25 parts"),
        (["--account", "alice", "--thread", *[f"p{i}" for i in range(26)]], "must have 2 to 25"),
        (["--account", "alice", "--text", "bell\a"], "control character U+0007"),
        (["--account", "alice", "--text", "r", "--reply-to", "abc"], "is not a tweet id"),
    ],
)
def test_bad_input_exits_2_names_the_problem_and_writes_nothing(cli_env: dict[str, str], args: list[str],
                                                                message: str) -> None:
    out = run("enqueue", *args, env=cli_env)
    assert out.returncode == 2
    assert message in out.stderr
    assert queue_json(cli_env) == []


def test_duplicate_text_is_refused(cli_env: dict[str, str]) -> None:
    assert run("enqueue", "--account", "alice", "--text", "Same   text", env=cli_env).returncode == 0
    out = run("enqueue", "--account", "alice", "--text", "same text", env=cli_env)
    assert out.returncode == 2 and "already has this text" in out.stderr
    assert len(queue_json(cli_env)) == 1


def test_file_with_one_bad_line_writes_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "batch.jsonl"
    f.write_text('{"account": "alice", "text": "good"}\n{"account": "alice", "text": "' + "z" * 300 + '"}\n')
    out = run("enqueue", "--file", str(f), env=cli_env)
    assert out.returncode == 2 and "line 2" in out.stderr and "300 weighted characters" in out.stderr
    f.write_text('{"account": "alice", "text": "good"}\nnot json\n')
    out = run("enqueue", "--file", str(f), env=cli_env)
    assert out.returncode == 2 and "line 2: not valid JSON" in out.stderr
    assert queue_json(cli_env) == []


def test_malformed_session_file_is_refused(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    out = run("accounts", "add", "carol", "--storage-state", str(bad), env=cli_env)
    assert out.returncode == 2 and "not valid JSON" in out.stderr
    out = run("accounts", "add", "carol", "--storage-state", str(tmp_path / "missing.json"), env=cli_env)
    assert out.returncode == 2 and "is missing" in out.stderr


def test_dead_database_and_bad_settings_fail_with_the_variable_named(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATABASE_URL": "postgresql://someone:pw@127.0.0.1:1/none"}
    out = run("queue", env=env)  # a database that is down is a service failure (1), not bad input (2)
    assert out.returncode == 1 and "PIPELINE_DATABASE_URL" in out.stderr and "pw" not in out.stderr
    env = {**os.environ, "PIPELINE_X_BASE_URL": "x.com"}
    out = run("config", env=env)
    assert out.returncode == 2 and "PIPELINE_X_BASE_URL" in out.stderr
    env = {**os.environ, "PIPELINE_POST_TIMEOUT_S": "soon"}
    out = run("config", env=env)
    assert out.returncode == 2 and "PIPELINE_POST_TIMEOUT_S" in out.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = {**os.environ, "PIPELINE_DATABASE_URL": "postgresql://app:hunter2@db.internal/pipeline",
           "PIPELINE_ALERT_WEBHOOK_URL": "https://hooks.example.com/services/T000/B000/XXXX"}
    out = run("config", "--json", env=env)
    assert out.returncode == 0
    assert "hunter2" not in out.stdout and "XXXX" not in out.stdout
    rows = {r["variable"]: r for r in json.loads(out.stdout)}
    assert rows["PIPELINE_DATABASE_URL"]["source"] == "environment"
