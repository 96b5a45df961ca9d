"""The `privacy-desk` command (see INTERFACE.md).

Exit status: 0 on success, 2 on a usage or configuration error (the message names the
setting), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot import record_cli
from bot.settings import Settings, calendar_from_env, load_environ
from core.errors import ConfigError, ConfigErrors, StorageError

__all__ = ["main"]

_WHERE_SETTINGS_GO = (
    "Settings come from the environment, or from a file named .env in the working directory "
    "(the environment wins); .env.example lists each one with an example, and the README's "
    "configuration reference says what it is for."
)

logger = logging.getLogger("privacy_desk")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privacy-desk", description="Privacy requests from mailbox to Slack."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING or ERROR")
    parser.add_argument("--version", action="version", version=f"privacy-desk {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="see it work: sample emails through the real pipeline, no settings needed"
    )
    demo.add_argument("--html", metavar="FILE", type=Path, help="also write the rendering as a web page")

    sub.add_parser("check", help="check the configuration against the real servers, one line per check")

    run = sub.add_parser("run", help="watch the mailbox and run the Slack app (Socket Mode by default)")
    run.add_argument("--http", metavar="PORT", type=int, help="serve Slack's HTTP requests on PORT instead")

    deadline = sub.add_parser("deadline", help="print the due date of a request received at an instant")
    deadline.add_argument(
        "received_at", metavar="RECEIVED_AT", help="ISO-8601 instant, e.g. 2026-03-05T10:00:00Z"
    )
    deadline.add_argument("--kind", choices=("gdpr", "complaint"), default="gdpr")
    deadline.add_argument("--extended", action="store_true", help="the extended (three-month) deadline")

    classify = sub.add_parser("classify", help="classify .eml files without any server")
    classify.add_argument("--json", action="store_true", help="one JSON object per line")
    classify.add_argument("files", nargs="+", metavar="FILE")

    train = sub.add_parser(
        "train", help="retrain the classifier on the bundled sets and the staff corrections (needs [train])"
    )
    train.add_argument(
        "--sets", help="comma-separated bundled sets (default: templates,ours,inbox_a,inbox_b)"
    )
    train.add_argument(
        "--fixtures", type=Path, metavar="DIR", help="the folder holding the sets (default: tests/fixtures)"
    )
    train.add_argument("--C", type=float, dest="C", help="use this C instead of choosing it (faster)")
    train.add_argument("--details", action="store_true", help="also list every wrong classification")
    record_cli.add_commands(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("privacy-desk")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    environ = load_environ(os.environ)
    log_format = (environ.get("LOG_FORMAT") or "text").strip().lower()
    if log_format not in ("text", "json"):
        print(f"privacy-desk: configuration error: LOG_FORMAT: must be text or json, got {log_format!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    _configure_logging(args.log_level or environ.get("LOG_LEVEL", "INFO"), json_lines=log_format == "json")
    try:
        if args.command == "run":
            return _run(environ, args.http)
        if args.command == "demo":
            from bot.demo import run_demo

            return run_demo(html=args.html)
        if args.command == "check":
            from bot.check import run_check

            return run_check(environ)
        if args.command == "deadline":
            return _deadline(environ, args)
        if args.command == "classify":
            return _classify(args, environ)
        if args.command == "train":
            return _train(environ, args)
        if args.command in record_cli.COMMANDS:
            return record_cli.run_command(environ, args)
    except ConfigErrors as e:
        lines = "\n".join(f"  {line}" for line in str(e).splitlines())
        print(
            f"privacy-desk: {len(e.errors)} setting(s) to fix:\n{lines}\n{_WHERE_SETTINGS_GO}",
            file=sys.stderr,
        )
        return 2
    except ConfigError as e:
        print(f"privacy-desk: configuration error: {e}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


_QUIET_LIBRARIES = ("slack_sdk", "slack_bolt", "imapclient", "aiosqlite", "asyncio", "aiohttp")


class _RepeatFilter(logging.Filter):
    """Lets a library's message through once per `window` seconds: Slack's Socket Mode client
    logs an error on every reconnect attempt, and an outage must be logged once, not per attempt."""

    def __init__(self, window: float = 600.0) -> None:
        super().__init__()
        self.window = window
        self.last: dict[tuple[str, object], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(_QUIET_LIBRARIES):
            return True
        key = (record.name, record.msg if isinstance(record.msg, str) else type(record.msg))
        if isinstance(record.msg, str) and len(record.msg) > 60:
            key = (record.name, record.msg[:60])
        now = record.created
        if now - self.last.get(key, -self.window) < self.window:
            return False
        self.last[key] = now
        return True


class _LibraryTracebacks(logging.Filter):
    """A library's exception is logged as one line naming its type: its traceback says nothing an
    operator can act on, and its message may hold a request's data."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.startswith(_QUIET_LIBRARIES):
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} [{type(error).__name__}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


class _JsonLines(logging.Formatter):
    """One JSON object per line (`LOG_FORMAT=json`), for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _configure_logging(level: str, *, json_lines: bool = False) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if json_lines:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(_JsonLines())
    # Libraries log request bodies at DEBUG; those hold personal data. Keep them quiet.
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    repeats = _RepeatFilter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeats)
        handler.addFilter(_LibraryTracebacks())


def _run(environ: dict[str, str], http_port: int | None) -> int:
    from bot.runtime import run
    from core.clock import running_from, system_clock
    from handlers.cases.inventory import load_inventory

    settings = Settings.from_env(environ, http_port=http_port)
    inventory = load_inventory(settings.systems_file)
    _load_model(settings.database_path)
    clock = system_clock
    if settings.fake_now is not None:
        clock = running_from(settings.fake_now)
        logger.warning(
            "PRIVACY_DESK_FAKE_NOW is set: the clock starts at %s, not now (rehearsals and tests only)",
            settings.fake_now.isoformat(),
        )
    try:
        return asyncio.run(run(settings, inventory=inventory, clock=clock))
    except StorageError as e:  # the file cannot be created, or was written by a newer version
        raise ConfigError("DATABASE_PATH", str(e)) from None


def _load_model(database_path: Path | str) -> None:
    """Classify with the newest model: the one `train` installed next to the database, else the
    bundled one (also when the installed one cannot be read: that is logged)."""
    from handlers.classify.classifier import use_model
    from handlers.classify.models_on_disk import model_file

    path = model_file(database_path)
    try:
        model = use_model(path)
    except ValueError as e:
        logger.error("%s; classifying with the bundled model", e)
        model = use_model(None)
    logger.info(
        "classifier model: %s (%d features)", model.source.name if model.source else "?", len(model.vocab)
    )


def _deadline(environ: dict[str, str], args: argparse.Namespace) -> int:
    calendar = calendar_from_env(environ)
    try:
        received = datetime.fromisoformat(args.received_at.replace("Z", "+00:00"))
    except ValueError:
        print(f"privacy-desk: RECEIVED_AT is not an ISO-8601 instant: {args.received_at!r}", file=sys.stderr)
        return 2
    if received.tzinfo is None:  # a local time: the controller's calendar
        received = received.replace(tzinfo=calendar.tz)
        print(f"privacy-desk: RECEIVED_AT has no offset: read as {calendar.timezone} time", file=sys.stderr)
    if args.extended and args.kind == "complaint":
        print(
            "privacy-desk: --extended does not apply to a complaint (its internal response time, "
            f"COMPLAINT_DAYS={calendar.complaint_days}, is not extended): showing its due date",
            file=sys.stderr,
        )
    try:
        due = calendar.due_date(received, kind=args.kind, extended=args.extended)
    except (OverflowError, ValueError):
        print(
            f"privacy-desk: RECEIVED_AT is too far in the future for a due date: {args.received_at!r}",
            file=sys.stderr,
        )
        return 2
    print(due.isoformat())
    return 0


def _classify(args: argparse.Namespace, environ: dict[str, str]) -> int:
    from handlers.classify.classifier import classify
    from handlers.mail_in.parsing import parse_email

    if environ.get("DATABASE_PATH"):  # the model trained for that database, if any
        _load_model(environ["DATABASE_PATH"])

    status = 0
    for name in args.files:
        try:
            raw = Path(name).read_bytes()
        except OSError as e:
            print(f"privacy-desk: cannot read {name}: {e.strerror}", file=sys.stderr)
            status = 1
            continue
        result = classify(parse_email(raw))
        if args.json:
            print(json.dumps({"file": name, **result.as_dict()}, ensure_ascii=False))
        else:
            labels = ",".join(result.labels)
            print(
                f"{name}: {result.kind} [{labels}] confidence={result.confidence:.2f} language={result.language}"
            )
    return status


def _train(environ: dict[str, str], args: argparse.Namespace) -> int:
    """Retrain on the bundled sets plus the corrections in DATABASE_PATH, print the leave-one-set-out
    evaluation, and install the model as `<database>.model.json.gz` unless it is worse."""
    from handlers.classify import training

    try:
        training.require_sklearn()
    except training.TrainingUnavailable as e:
        print(f"privacy-desk: {e}", file=sys.stderr)
        return 2
    from handlers.classify.models_on_disk import model_file, trained_model_file
    from handlers.classify.training_sets import BUNDLED_SETS, bundled_sets, correction_set

    database = Path(environ.get("DATABASE_PATH") or "./privacy-desk.sqlite3")
    if not database.is_file():
        raise ConfigError(
            "DATABASE_PATH", f"there is no database at {database} (the corrections are read from it)"
        )
    names = [n.strip() for n in (args.sets or ",".join(BUNDLED_SETS)).split(",") if n.strip()]
    unknown = sorted(set(names) - set(BUNDLED_SETS))
    if unknown or not names:
        print(f"privacy-desk: --sets: choose among {', '.join(BUNDLED_SETS)}", file=sys.stderr)
        return 2
    try:
        every = bundled_sets(args.fixtures)
    except FileNotFoundError as e:
        print(f"privacy-desk: {e}; give the folder with --fixtures", file=sys.stderr)
        return 2
    try:
        corrections = asyncio.run(_corrections(database))
    except StorageError as e:
        raise ConfigError("DATABASE_PATH", str(e)) from None
    bundled = {n: every[n] for n in names}
    sets = dict(bundled)
    if corrections:
        sets["corrections"] = correction_set(corrections)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = datetime.now(UTC)
    print(
        f"training on {', '.join(f'{n} ({len(s)})' for n, s in sets.items())}; "
        f"{len(corrections)} staff correction(s) from {database}"
    )
    held_out = [*bundled, *(["corrections"] if len(corrections) >= training.MIN_HELD_OUT else [])]
    results = training.leave_one_set_out(sets, held_out=held_out, C=args.C, log=log)
    print(training.format_report(results, details=args.details))
    log("[all sets] training the model to install")
    new = training.train(sets, C=args.C, evaluation=results, log=log)
    target, current = trained_model_file(database), model_file(database)
    if current.is_file() and current.read_bytes() == new.data:
        print(f"\nthe new model is the same as the current one ({current}); nothing to install")
        return 0
    ok, why = training.compare(new, results, current, bundled)
    if not ok:
        print(
            f"privacy-desk: the new model is NOT installed: it is worse on the bundled sets than the "
            f"current one ({current}): {why}",
            file=sys.stderr,
        )
        return 1
    tmp = target.with_name(f"{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(new.data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    took = (datetime.now(UTC) - started).total_seconds()
    print(
        f"\ninstalled {target} ({len(new.data) / 1024:.0f} KiB, {new.features} features, C={new.params['C']:g}, "
        f"trained in {took:.0f} s): {why}. `privacy-desk run` loads the newest model when it starts."
    )
    return 0


async def _corrections(database: Path) -> list[Any]:
    from storage.store import Store

    async with await Store.open(database) as store:
        return await store.corrections.all()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
