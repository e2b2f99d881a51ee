"""The `pipeline` command: what an operator types. Each subcommand is a thin call into the core.

Exit codes: 0 ok; 1 a runtime failure (or `health` degraded); 2 bad input or configuration, nothing
written (or `health` unhealthy). Errors are one line naming the problem and the fix; secrets never appear.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.settings import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(ValueError):
    """Bad input from the operator (exit 2)."""


def _engine(settings: Settings, need_schema: bool = True):  # type: ignore[no-untyped-def]
    from pipeline.db import get_engine
    from pipeline.migrate import require_schema

    engine = get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
    if need_schema:
        require_schema(engine)
    return engine


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") if r.get(c) is not None else "")) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c) if r.get(c) is not None else "").ljust(widths[c]) for c in columns))


# --------------------------------------------------------------------------- commands


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.migrate import upgrade

    revision = upgrade(_engine(settings, need_schema=False))
    print(f"database schema at revision {revision}")
    return EXIT_OK


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    rows = settings.describe()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["variable", "value", "source"])
    return EXIT_OK


def cmd_accounts_add(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.browser import read_storage_state, write_secret_file

    handle = args.handle.lstrip("@")
    if not handle.replace("_", "").isalnum() or len(handle) > 15:
        raise UsageError(f"handle {args.handle!r} is not an X handle (letters, digits and _, at most 15)")
    try:
        state = read_storage_state(args.storage_state)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    engine = _engine(settings)
    target = write_secret_file(settings.state_path / "sessions" / f"{handle}.json", state)
    queue.add_account(engine, handle, str(target), args.timezone)
    print(f"account @{handle} registered; session stored at {target} (mode 0600)")
    return EXIT_OK


def cmd_accounts_list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue

    rows = queue.list_accounts(_engine(settings))
    for r in rows:
        r["session"] = "present" if Path(r["storage_state_path"]).exists() else "MISSING (run pipeline login)"
        r["created_at"] = r["created_at"].isoformat()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["handle", "timezone", "session", "storage_state_path"])
    return EXIT_OK


def _parse_at(value: str | None, where: str = "--at") -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{where} {value!r} is not an ISO-8601 time such as 2026-12-01T09:30:00Z") from None
    if at.tzinfo is None:
        raise UsageError(f"{where} {value!r} has no time zone; add Z or an offset like +02:00")
    return at


def _entries_from_file(path: str) -> list[tuple[Any, datetime | None]]:
    from pipeline.content import ContentError, make_draft

    p = Path(path)
    if not p.exists():
        raise UsageError(f"--file {path}: no such file")
    entries = []
    for n, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not valid JSON ({exc.msg}); nothing was enqueued") from None
        if not isinstance(obj, dict) or "account" not in obj or ("text" in obj) == ("parts" in obj):
            raise UsageError(f"{where}: needs 'account' and exactly one of 'text' or 'parts'; nothing was enqueued")
        parts = [obj["text"]] if "text" in obj else obj["parts"]
        try:
            draft = make_draft(obj["account"], parts, obj.get("reply_to"), obj.get("topic"), obj.get("format"))
        except ContentError as exc:
            raise UsageError(f"{where}: {exc}; nothing was enqueued") from None
        entries.append((draft, _parse_at(obj.get("at"), f"{where}: 'at'")))
    if not entries:
        raise UsageError(f"--file {path} holds no items")
    return entries


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.content import ContentError, make_draft

    if args.file:
        if args.text or args.thread or args.account:
            raise UsageError("--file cannot be combined with --account/--text/--thread")
        entries = _entries_from_file(args.file)
    else:
        if not args.account:
            raise UsageError("--account is required (or use --file)")
        if bool(args.text) == bool(args.thread):
            raise UsageError("give exactly one of --text TEXT or --thread PART PART...")
        parts = [args.text] if args.text else args.thread
        if args.thread and len(args.thread) < 2:
            raise UsageError("a thread has 2 to 25 parts; --thread got 1 (use --text for a single post)")
        try:
            entries = [(make_draft(args.account, parts, args.reply_to, args.topic, args.format), _parse_at(args.at))]
        except ContentError as exc:
            raise UsageError(str(exc)) from None
    engine = _engine(settings)
    try:
        ids = queue.enqueue(engine, entries)
    except queue.EnqueueError as exc:
        raise UsageError(f"{exc}; nothing was enqueued") from None
    for item_id in ids:
        item = queue.get_item(engine, item_id)
        print(f"enqueued item {item.id} for @{item.account} ({item.kind}) at {queue.iso(item.scheduled_at)}")
    return EXIT_OK


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue

    items = queue.list_items(_engine(settings), account=args.account, states=args.state or None, limit=args.limit)
    rows = [i.as_json() for i in items]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    for r in rows:
        text = r.get("text") or " / ".join(r["parts"])
        r["text"] = text if len(text) <= 48 else text[:45] + "..."
        r["tweet_ids"] = ",".join(r["tweet_ids"])
        r["last_error"] = (r["last_error"] or "")[:60]
    _print_table(rows, ["id", "account", "kind", "state", "scheduled_at", "tweet_ids", "text", "last_error"])
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue

    if not queue.cancel(_engine(settings), args.item_id):
        raise UsageError(f"item {args.item_id} cannot be cancelled (missing, or already posting/posted)")
    print(f"item {args.item_id} cancelled")
    return EXIT_OK


def cmd_sandbox_serve(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.server import serve

    if args.faults and not Path(args.faults).exists():
        raise UsageError(f"--faults {args.faults}: no such file")
    serve(args.host, args.port, faults_file=args.faults, state_file=args.state)
    return EXIT_OK


def cmd_breaker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.breaker import Breaker

    breaker = Breaker(_engine(settings))
    if args.breaker_command == "reset":
        breaker.reset(args.account.lstrip("@"), reason="operator reset (pipeline breaker reset)")
        print(f"breaker for @{args.account.lstrip('@')} closed")
        return EXIT_OK
    rows = breaker.status(args.account)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print_table(rows, ["account", "state", "open_until", "trips", "reason"])
    return EXIT_OK


def cmd_login(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.login import interactive_login

    handle = args.account.lstrip("@")
    path = interactive_login(settings, handle, timeout_s=args.timeout)
    from pipeline import queue

    queue.add_account(_engine(settings), handle, str(path), args.timezone)
    print(f"logged in as @{handle}; session saved to {path} (mode 0600)")
    return EXIT_OK


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.daemons import DaemonProbe, probe_daemons
    from pipeline.health import check_health

    probe = DaemonProbe() if args.no_daemon else probe_daemons()
    report = check_health(settings, probe, daemon_expected=not args.no_daemon)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.render())
    return report.exit_code


def cmd_canary(args: argparse.Namespace, settings: Settings) -> int:
    """Check X's pages for every selector the client needs, without posting; exit 1 when one is missing."""
    from pipeline.alerts import AlertSink
    from pipeline.browser import BrowserSession
    from pipeline.canary import run_canary

    engine = _engine(settings)
    sink = AlertSink(engine, webhook_url=settings.alert_webhook_url, cooldown_s=settings.alert_cooldown_s)
    with BrowserSession(settings.browser_executable, settings.headless, settings.nav_timeout_s) as browser:
        try:
            report = run_canary(engine, settings, browser, alerts=sink, accounts=[args.account] if args.account else None)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
    print(json.dumps(report.as_json(), indent=2, default=str) if args.json else report.render())
    return EXIT_OK if report.ok else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.demo import run_demo

    return run_demo(settings, accounts=args.accounts, posts=args.posts)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description="Post to X on schedule, once, and say so when it can't.")
    parser.add_argument("--log-format", choices=["text", "json"], help="override PIPELINE_LOG_FORMAT")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace, Settings], int], help: str, parent=sub):  # type: ignore[no-untyped-def]
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    add("upgrade", cmd_db_upgrade, "create or migrate the app database schema", db)

    p = add("config", cmd_config, "every setting, its value (secrets masked) and where it came from")
    p.add_argument("--json", action="store_true")

    accounts = sub.add_parser("accounts", help="X accounts and their browser sessions").add_subparsers(
        dest="accounts_command", required=True)
    p = add("add", cmd_accounts_add, "register an account with a Playwright storage_state file", accounts)
    p.add_argument("handle")
    p.add_argument("--storage-state", required=True, metavar="FILE")
    p.add_argument("--timezone", default="UTC", help="the account's time zone for quiet hours (IANA name)")
    p = add("list", cmd_accounts_list, "registered accounts", accounts)
    p.add_argument("--json", action="store_true")

    p = add("enqueue", cmd_enqueue, "queue a post, a thread or a reply (validated; all or nothing)")
    p.add_argument("--account")
    p.add_argument("--text")
    p.add_argument("--thread", nargs="+", metavar="PART")
    p.add_argument("--reply-to", metavar="TWEET_ID")
    p.add_argument("--at", metavar="ISO-8601", help="when to post (default: now)")
    p.add_argument("--topic")
    p.add_argument("--format")
    p.add_argument("--file", help="JSON lines: account, text or parts, optional at, reply_to, topic, format")

    p = add("queue", cmd_queue, "items with state, schedule, tweet ids and last error")
    p.add_argument("--json", action="store_true")
    p.add_argument("--account")
    p.add_argument("--state", action="append")
    p.add_argument("--limit", type=int, default=1000)

    p = add("cancel", cmd_cancel, "cancel a queued item")
    p.add_argument("item_id", type=int)

    sandbox = sub.add_parser("sandbox", help="the local stand-in for x.com").add_subparsers(
        dest="sandbox_command", required=True)
    p = add("serve", cmd_sandbox_serve, "serve the sandbox", sandbox)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--faults", metavar="FILE", help="JSON faults to inject from the start")
    p.add_argument("--state", metavar="FILE", help="SQLite file to keep tweets across restarts")

    breaker = sub.add_parser("breaker", help="per-account circuit breakers").add_subparsers(
        dest="breaker_command", required=True)
    p = add("status", cmd_breaker, "every account's breaker", breaker)
    p.add_argument("--account")
    p.add_argument("--json", action="store_true")
    p = add("reset", cmd_breaker, "close an account's breaker (after fixing its session)", breaker)
    p.add_argument("--account", required=True)

    p = add("login", cmd_login, "log in to X in a browser window and save the session (mode 0600)")
    p.add_argument("--account", required=True)
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the login")

    p = add("health", cmd_health, "liveness probe: exit 0 healthy, 1 degraded, 2 unhealthy")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-daemon", action="store_true", help="do not require a Dagster daemon heartbeat")

    p = add("canary", cmd_canary, "load composer, timeline and a status page per account (never posts) and check "
            "every selector the X client needs; exit 1 and a ui_changed alert when one is missing")
    p.add_argument("--account")
    p.add_argument("--json", action="store_true")

    p = add("demo", cmd_demo, "run plan, post, metrics and performance once against a local sandbox")
    p.add_argument("--accounts", type=int, default=2)
    p.add_argument("--posts", type=int, default=3, help="items to plan per account")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.logs import configure_logging

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(log_format=args.log_format)
        configure_logging(settings.log_format)
        return args.func(args, settings)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one clear line
        from pipeline.db import DatabaseError

        if isinstance(exc, DatabaseError):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        logging.getLogger("pipeline").debug("unhandled", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
