"""The record's commands: `report`, `export` (and `export --audit REF`), `backup` and `purge`.

They need only the database (DATABASE_PATH), the calendar (TIMEZONE) and RETENTION_DAYS: no
Slack, mailbox or mail server. They are safe while `run` is running (SQLite's WAL lets readers
and one writer work at once; `purge` waits for `run`'s writes to finish).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

from bot.settings import RecordSettings, record_settings_from_env
from core.clock import system_clock
from core.errors import ConfigError
from core.refs import CASE_REF
from handlers.classify.models_on_disk import trained_model_file
from handlers.record.register import history_text, register_csv, register_json
from handlers.record.report import FORMATS, render_report
from handlers.record.retention import purge
from storage.db import backup_file
from storage.store import Store

__all__ = ["add_commands", "run_command"]

COMMANDS = ("report", "export", "backup", "purge")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The record's subcommands on the `privacy-desk` parser."""
    report = sub.add_parser("report", help="anonymised statistics over a period (no names, no addresses)")
    report.add_argument("--from", dest="first", metavar="DATE", help="first day of receipt, YYYY-MM-DD")
    report.add_argument("--to", dest="last", metavar="DATE", help="last day of receipt, YYYY-MM-DD")
    report.add_argument("--format", choices=FORMATS, default="text")

    export = sub.add_parser(
        "export", help="the register of requests (with personal data), or one case's history"
    )
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--audit", metavar="REF", help="print this case's full history instead, oldest first")

    backup = sub.add_parser("backup", help="a consistent copy of the database, safe while run is running")
    backup.add_argument("path", metavar="PATH", type=Path)
    backup.add_argument("--force", action="store_true", help="replace PATH if it exists")

    purge_cmd = sub.add_parser("purge", help="apply the retention policy now (run does it daily)")
    purge_cmd.add_argument("--dry-run", action="store_true", help="only show what would be erased")


def run_command(environ: dict[str, str], args: argparse.Namespace) -> int:
    """Run one of `COMMANDS`; returns the exit status."""
    settings = record_settings_from_env(environ)
    if args.command == "backup":
        return _backup(settings, args.path, force=args.force)
    if not settings.database_path.is_file():
        raise ConfigError("DATABASE_PATH", f"no database at {settings.database_path}")
    return asyncio.run(_with_store(settings, args))


async def _with_store(settings: RecordSettings, args: argparse.Namespace) -> int:
    store = await Store.open(settings.database_path)
    try:
        if args.command == "report":
            return await _report(store, settings, args)
        if args.command == "export":
            return await _export(store, settings, args)
        return await _purge(store, settings, args)
    finally:
        await store.close()


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(option, f"not a date (YYYY-MM-DD): {value!r}") from None


async def _report(store: Store, settings: RecordSettings, args: argparse.Namespace) -> int:
    first, last = _day(args.first, "--from"), _day(args.last, "--to")
    if first and last and first > last:
        raise ConfigError("--from", f"{first} is after --to {last}")
    figures = await store.read.stats.received(first, last, tz=settings.calendar.tz)
    sys.stdout.write(render_report(figures, first=first, last=last, fmt=args.format))
    return 0


async def _export(store: Store, settings: RecordSettings, args: argparse.Namespace) -> int:
    if args.audit:
        ref = args.audit.strip().upper()
        case = await store.read.cases.by_ref(ref) if CASE_REF.fullmatch(ref) else None
        if case is None:
            print(f"privacy-desk: no case {args.audit!r}", file=sys.stderr)
            return 1
        entries = await store.read.register.history(case.id)
        sys.stdout.write(history_text(case, entries, tz=settings.calendar.tz))
        return 0
    rows = store.read.register.rows()
    chunks = register_csv(rows) if args.format == "csv" else register_json(rows)
    async for chunk in chunks:
        sys.stdout.write(chunk)
    return 0


async def _purge(store: Store, settings: RecordSettings, args: argparse.Namespace) -> int:
    now = settings.fake_now or system_clock()
    report = await purge(
        store,
        retention_days=settings.retention_days,
        now=now,
        dry_run=args.dry_run,
        trained_model=trained_model_file(settings.database_path),
    )
    for line in report.lines():
        print(line)
    return 0


def _backup(settings: RecordSettings, target: Path, *, force: bool) -> int:
    if not settings.database_path.is_file():
        raise ConfigError("DATABASE_PATH", f"no database at {settings.database_path}")
    if target.exists() and not force:
        print(f"privacy-desk: {target} exists; add --force to replace it", file=sys.stderr)
        return 1
    if target.resolve() == settings.database_path.resolve():
        print("privacy-desk: the backup cannot be the database itself", file=sys.stderr)
        return 1
    backup_file(settings.database_path, target)
    print(f"backed up {settings.database_path} to {target} (mode 600)")
    return 0
