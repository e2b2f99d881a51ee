"""The `pipeline` command: what an operator types. Each subcommand is a thin call into the core.

Exit codes: 0 done; 2 bad input or configuration, nothing written; 1 a failure of ours or of a service
(database down, browser missing). `health` keeps its own 0 healthy / 1 degraded / 2 unhealthy. Errors name
the problem and the fix; every message passes through `redact`, so no credential is ever printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.handles import HandleError, canonical_handle
from pipeline.inputs import InputError, check_timezone, parse_at, parse_enqueue_file
from pipeline.media import MediaError, StagedMedia
from pipeline.redact import redact
from pipeline.settings import ConfigError, Settings, load_settings, load_settings_lenient
from pipeline.statefiles import StateFileError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
ENQUEUE_LINES_SHOWN = 20


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
    if args.markdown:
        from pipeline.settings import markdown_table

        print(markdown_table())
        return EXIT_OK
    rows = settings.describe()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows, ["variable", "value", "source"])
    return EXIT_OK


def _refuse_replacing_a_session(engine: Any, handle: str, replace: bool) -> None:
    """Re-adding an account that has a session file would silently drop a working login."""
    from pipeline import queue

    existing = {r["handle"]: r for r in queue.list_accounts(engine)}.get(handle)
    if existing and Path(existing["storage_state_path"]).exists() and not replace:
        raise UsageError(f"@{handle} is already registered with a session at {existing['storage_state_path']}; "
                         "add --replace to replace that session")


def cmd_accounts_add(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.browser import read_storage_state
    from pipeline.login import session_path
    from pipeline.statefiles import warn_if_shared, write_secret_file

    handle = canonical_handle(args.handle, "handle")
    timezone = check_timezone(args.timezone)
    try:
        state = read_storage_state(args.storage_state)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    engine = _engine(settings)
    _refuse_replacing_a_session(engine, handle, args.replace)
    warning = warn_if_shared(args.storage_state)
    if warning:
        print(warning, file=sys.stderr)
    target = write_secret_file(session_path(settings, handle), state)
    queue.add_account(engine, handle, str(target), timezone)
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


class _MediaAction(argparse.Action):
    """--media [N:]FILE adds a file (to part N of a thread, default 1); --alt TEXT sets the preceding file's alt."""

    def __call__(self, parser, namespace, value, option_string=None):  # type: ignore[no-untyped-def]
        entries = namespace.media or []
        if option_string == "--alt":
            if not entries or entries[-1]["alt"] is not None:
                parser.error("--alt TEXT goes right after the --media FILE it describes (one --alt per file)")
            entries[-1]["alt"] = value
        else:
            part, _, file = value.partition(":") if re.match(r"^[0-9]+:.", value) else ("1", "", value)
            entries.append({"part": int(part), "path": file, "alt": None})
        namespace.media = entries


def _cli_media(entries: list[dict[str, Any]], parts: int) -> list[list[StagedMedia]]:
    """The --media files per part, each checked (real format, size, alt) before anything is written."""
    from pipeline.media import check_file

    media: list[list[StagedMedia]] = [[] for _ in range(parts)]
    for entry in entries:
        if not 1 <= entry["part"] <= parts:
            raise UsageError(f"--media {entry['part']}:{entry['path']}: there is no part {entry['part']} "
                             f"(the post has {parts} part{'s' if parts > 1 else ''})")
        media[entry["part"] - 1].append(check_file(entry["path"], entry["alt"]))
    return media


def cmd_enqueue(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.content import ContentError, make_draft
    from pipeline.media import storing

    labels: list[str] | None = None
    if args.file:
        if (args.text or args.thread or args.account or args.at or args.reply_to or args.topic or args.format
                or args.media):
            raise UsageError("--file cannot be combined with --account/--text/--thread/--at/--reply-to/--topic/"
                             "--format/--media (give media in the file's lines)")
        requests = parse_enqueue_file(args.file)
        entries = [(r.draft, r.at) for r in requests]
        staged = [m for r in requests for m in r.media_files]
        labels = [f"--file {args.file} line {r.line}" for r in requests]
    else:
        if not args.account:
            raise UsageError("--account is required (or use --file)")
        if bool(args.text) == bool(args.thread):
            raise UsageError("give exactly one of --text TEXT or --thread PART PART...")
        parts = [args.text] if args.text else args.thread
        if args.thread and len(args.thread) < 2:
            raise UsageError("a thread has 2 to 25 parts; --thread got 1 (use --text for a single post)")
        media = _cli_media(args.media or [], len(parts))
        staged = [m for part in media for m in part]
        try:
            draft = make_draft(args.account, parts, args.reply_to, args.topic, args.format,
                               [[m.ref for m in part] for part in media])
            entries = [(draft, parse_at(args.at))]
        except ContentError as exc:
            raise UsageError(str(exc)) from None
    engine = _engine(settings)
    try:
        with storing(settings.state_path, staged):
            ids = queue.enqueue(engine, entries, labels=labels)
    except queue.EnqueueError as exc:
        raise UsageError(f"{exc}; nothing was enqueued") from None
    for item_id, (draft, at) in list(zip(ids, entries, strict=True))[:ENQUEUE_LINES_SHOWN]:
        files = sum(len(part) for part in draft.media)
        with_media = f" with {files} media file{'s' if files > 1 else ''}" if files else ""
        print(f"enqueued item {item_id} for @{draft.account} ({draft.kind}){with_media} at {queue.iso(at) or 'now'}")
    if len(ids) > ENQUEUE_LINES_SHOWN:
        print(f"... {len(ids)} items enqueued in all (ids {ids[0]} to {ids[-1]}); `pipeline queue` lists them")
    return EXIT_OK


# States whose items a human must judge: the listing shows the evidence under each.
EVIDENCE_STATES = ("needs_review", "unknown")  # pipeline.schema.NEEDS_REVIEW, UNKNOWN


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue, resolve

    account = canonical_handle(args.account, "--account") if args.account else None
    engine = _engine(settings)
    items = queue.list_items(engine, account=account, states=args.state or None, limit=args.limit)
    judged = [i for i in items if i.state in EVIDENCE_STATES]
    evidence = resolve.evidence_for(engine, judged) if judged else {}
    rows = [i.as_json() | ({"evidence": evidence[i.id].as_json()} if i.id in evidence else {}) for i in items]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    for r in rows:
        text = r.get("text") or " / ".join(r["parts"])
        r["text"] = text if len(text) <= 48 else text[:45] + "..."
        r["tweet_ids"] = ",".join(r["tweet_ids"])
        r["last_error"] = (r["last_error"] or "")[:60]
    _print_table(rows, ["id", "account", "kind", "state", "scheduled_at", "tweet_ids", "text", "last_error"])
    for item in judged:
        print(f"\nitem {item.id} (@{item.account}, {item.state}): evidence")
        for line in evidence[item.id].lines():
            print(f"  {line}")
        checked = " --checked" if evidence[item.id].maybe_live else ""
        print(f"  decide: pipeline resolve {item.id} {resolve.tweet_id_args(item)} | --requeue{checked} "
              f"| --cancel{checked}  [--reason TEXT]")
    return EXIT_OK


def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import resolve

    chosen = [bool(args.tweet_id), args.requeue, args.cancel]
    if sum(chosen) != 1:
        raise UsageError("give exactly one of --tweet-id ID (repeat per thread part), --requeue or --cancel")
    if args.checked and args.tweet_id:
        raise UsageError("--checked goes with --requeue or --cancel (you looked and the post is not live)")
    engine = _engine(settings)
    try:
        if args.tweet_id:
            item = resolve.record_live(engine, args.item_id, args.tweet_id, args.reason)
            print(f"item {item.id} recorded as posted with tweet id(s) {', '.join(item.tweet_ids)}")
        elif args.requeue:
            item = resolve.requeue(engine, args.item_id, args.reason, checked=args.checked)
            print(f"item {item.id} queued again for {item.scheduled_at.isoformat()}")
        else:
            item = resolve.cancel(engine, args.item_id, args.reason, checked=args.checked)
            print(f"item {item.id} cancelled")
    except resolve.ResolveError as exc:
        raise UsageError(str(exc)) from None
    return EXIT_OK


def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import resolve

    if bool(args.item_ids) == args.all:
        raise UsageError("give item ids to approve, or --all for every pending_approval item")
    try:
        ids = resolve.approve(_engine(settings), None if args.all else args.item_ids, args.reason)
    except resolve.ResolveError as exc:
        raise UsageError(str(exc)) from None
    print(f"approved {len(ids)} item(s)" + (f": {', '.join(map(str, ids))}" if ids else ""))
    return EXIT_OK


def cmd_sandbox_serve(args: argparse.Namespace, settings: Settings) -> int:
    from sandbox.server import serve

    if args.faults and not Path(args.faults).exists():
        raise UsageError(f"--faults {args.faults}: no such file")
    serve(args.host, args.port, faults_file=args.faults, state_file=args.state, realism=args.realism)
    return EXIT_OK


def cmd_breaker(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.breaker import Breaker

    engine = _engine(settings)
    breaker = Breaker(engine)
    account = canonical_handle(args.account, "--account") if args.account else None
    if account is not None and account not in {r["handle"] for r in queue.list_accounts(engine)}:
        raise UsageError(f"--account @{account} is not registered; `pipeline accounts list` shows the accounts")
    if args.breaker_command == "reset":
        breaker.reset(account, reason="operator reset (pipeline breaker reset)")
        print(f"breaker for @{account} closed")
        return EXIT_OK
    rows = breaker.status(account)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        _print_table(rows, ["account", "state", "open_until", "trips", "reason"])
    return EXIT_OK


def cmd_media_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Free the media store of files nothing can post again (pipeline/media_prune.py says which)."""
    from pipeline.media_prune import prune

    report = prune(_engine(settings), settings.state_path, settings.media_retention_days, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    for row in report.deleted[:ENQUEUE_LINES_SHOWN]:
        print(f"{verb} {row['sha256']} ({row['bytes']:,} bytes; named by {row['referenced_by']})")
    print(f"{verb} {len(report.deleted)} media file(s), {report.freed_bytes:,} bytes; kept {report.kept_referenced} "
          f"named by queued, in-flight or recently finished items and {report.kept_recent} recent unnamed "
          f"(retention {report.retention_days:g} days, PIPELINE_MEDIA_RETENTION_DAYS)")
    return EXIT_OK


def cmd_login(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import queue
    from pipeline.login import interactive_login

    handle = canonical_handle(args.account, "--account")
    timezone = check_timezone(args.timezone)
    if not args.timeout > 0:
        raise UsageError("--timeout must be more than 0 seconds")
    engine = _engine(settings)
    path = interactive_login(settings, handle, timeout_s=args.timeout)
    queue.add_account(engine, handle, str(path), timezone)
    print(f"logged in as @{handle}; session saved to {path} (mode 0600)")
    return EXIT_OK


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.daemons import DaemonProbe, probe_daemons
    from pipeline.health import UNHEALTHY, HealthReport, check_configuration, check_health

    try:
        probe = DaemonProbe() if args.no_daemon else probe_daemons(settings.state_path)
        report = check_health(settings, probe, daemon_expected=not args.no_daemon)
    except Exception as exc:  # noqa: BLE001 - a probe that cannot finish is itself a finding
        logging.getLogger("pipeline").debug("health check failed", exc_info=True)
        report = HealthReport()
        report.add("health_check", UNHEALTHY, redact(f"the check itself failed: {type(exc).__name__}: {exc}"))
    check_configuration(report, args.config_problems)
    if args.alert:
        _alert_from_health(report, settings)
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(report.render())
    return report.exit_code


def _alert_from_health(report: Any, settings: Settings) -> None:
    """`health --alert`: the watchdog outside Dagster tells what the daemons cannot (a dead sensor daemon, the
    database down), through the same sink and out-of-band ledger as the sensors, so nothing is told twice."""
    from pipeline.alerts import AlertLedger, AlertSink
    from pipeline.db import get_engine
    from pipeline.watch import tell_watched

    sink = AlertSink(get_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow),
                     webhook_url=settings.alert_webhook_url, cooldown_s=settings.alert_cooldown_s,
                     logger=logging.getLogger("pipeline.alerts"), ledger=AlertLedger.in_state_dir(settings.state_path))
    try:
        tell_watched(report, sink)
    except Exception as exc:  # noqa: BLE001 - the report still prints and exits with its code
        print(redact(f"warning: could not send the health alerts: {type(exc).__name__}: {exc}"), file=sys.stderr)


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


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} must be 1 or more")
    return value


def _item_states() -> list[str]:
    from pipeline.schema import STATES

    return list(STATES)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description="Post to X on schedule, once, and say so when it can't.")
    parser.add_argument("--log-format", choices=["text", "json"], help="override PIPELINE_LOG_FORMAT")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace, Settings], int], help: str, parent=sub,  # type: ignore[no-untyped-def]
            reports_bad_settings: bool = False):
        """`reports_bad_settings`: the command reads settings leniently and reports what is invalid (health),
        where every other command refuses to act on an invalid setting."""
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func, reports_bad_settings=reports_bad_settings)
        return p

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    add("upgrade", cmd_db_upgrade, "create or migrate the app database schema", db)

    p = add("config", cmd_config, "every setting, its value (secrets masked) and where it came from")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="the README's configuration table (every setting, default, meaning)")

    accounts = sub.add_parser("accounts", help="X accounts and their browser sessions").add_subparsers(
        dest="accounts_command", required=True)
    p = add("add", cmd_accounts_add, "register an account with a Playwright storage_state file", accounts)
    p.add_argument("handle")
    p.add_argument("--storage-state", required=True, metavar="FILE")
    p.add_argument("--timezone", default="UTC", help="the account's time zone for quiet hours (IANA name)")
    p.add_argument("--replace", action="store_true", help="replace the session of an account already registered")
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
    p.add_argument("--file", help="JSON lines: account, text or parts, optional at, reply_to, topic, format, media")
    p.add_argument("--media", action=_MediaAction, metavar="[N:]FILE",
                   help="attach an image, GIF or video (repeat for up to 4 images); N: attaches to part N of a thread")
    p.add_argument("--alt", action=_MediaAction, dest="media", metavar="TEXT",
                   help="alt text for the --media file just before it (up to 1,000 characters)")

    p = add("queue", cmd_queue, "items with state, schedule, tweet ids and last error")
    p.add_argument("--json", action="store_true")
    p.add_argument("--account")
    p.add_argument("--state", action="append", choices=_item_states())
    p.add_argument("--limit", type=_positive_int, default=1000)

    p = add("resolve", cmd_resolve, "decide an item the pipeline could not: live (--tweet-id), --requeue or --cancel")
    p.add_argument("item_id", type=int)
    p.add_argument("--tweet-id", action="append", metavar="ID", help="the live post's id; once per thread part, in order")
    p.add_argument("--requeue", action="store_true", help="it is not live: post it again")
    p.add_argument("--cancel", action="store_true", help="never post it")
    p.add_argument("--checked", action="store_true", help="you looked on x.com: the post is not live")
    p.add_argument("--reason", help="why (kept with the decision)")

    p = add("approve", cmd_approve, "let planned items (pending_approval) be posted")
    p.add_argument("item_ids", type=int, nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--reason")

    sandbox = sub.add_parser("sandbox", help="the local stand-in for x.com").add_subparsers(
        dest="sandbox_command", required=True)
    p = add("serve", cmd_sandbox_serve, "serve the sandbox", sandbox)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--faults", metavar="FILE", help="JSON faults to inject from the start")
    p.add_argument("--state", metavar="FILE", help="SQLite file to keep tweets across restarts")
    p.add_argument(
        "--realism",
        choices=("realistic", "friendly"),
        default="realistic",
        help="realistic (default): behaves like x.com; friendly: plain server-rendered pages for unit tests",
    )

    breaker = sub.add_parser("breaker", help="per-account circuit breakers").add_subparsers(
        dest="breaker_command", required=True)
    p = add("status", cmd_breaker, "every account's breaker", breaker)
    p.add_argument("--account")
    p.add_argument("--json", action="store_true")
    p = add("reset", cmd_breaker, "close an account's breaker (after fixing its session)", breaker)
    p.add_argument("--account", required=True)

    media = sub.add_parser("media", help="the content-addressed media store").add_subparsers(
        dest="media_command", required=True)
    p = add("prune", cmd_media_prune, "delete stored media only items finished longer ago than "
            "PIPELINE_MEDIA_RETENTION_DAYS name (never media of queued or in-flight items)", media)
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    p.add_argument("--json", action="store_true")

    p = add("login", cmd_login, "log in to X in a browser window and save the session (mode 0600)")
    p.add_argument("--account", required=True)
    p.add_argument("--timezone", default="UTC")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the login")

    p = add("health", cmd_health, "liveness probe: exit 0 healthy, 1 degraded, 2 unhealthy", reports_bad_settings=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-daemon", action="store_true", help="do not require a Dagster daemon heartbeat")
    p.add_argument("--alert", action="store_true",
                   help="also alert (webhook) a dead daemon, the database down or a non-empty journal, once per "
                        "condition, re-armed when healed: run it from a systemd timer or cron (README)")

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
        if args.reports_bad_settings:
            settings, args.config_problems = load_settings_lenient(log_format=args.log_format)
        else:
            settings = load_settings(log_format=args.log_format)
        configure_logging(settings.log_format)
        return args.func(args, settings)
    except (UsageError, ConfigError, HandleError, InputError, StateFileError, MediaError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one clear line
        from pipeline.db import DatabaseError, SchemaError

        if isinstance(exc, DatabaseError):
            print(f"error: {redact(str(exc))}", file=sys.stderr)
            return EXIT_BAD_INPUT if isinstance(exc, SchemaError) else EXIT_FAILURE
        logging.getLogger("pipeline").debug("unhandled", exc_info=True)
        print(f"error: {type(exc).__name__}: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
