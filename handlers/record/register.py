"""The register of requests (`privacy-desk export`) and one case's history (`export --audit REF`)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

from core.vocabulary import kind_label
from storage.models import Case
from storage.register import REGISTER_COLUMNS, HistoryEntry

__all__ = ["history_text", "register_csv", "register_json"]


async def register_csv(rows: AsyncIterator[dict[str, object]]) -> AsyncIterator[str]:
    """The register as CSV: a header row, then one row per case (booleans as true/false)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REGISTER_COLUMNS)
    n = 0
    async for row in rows:
        writer.writerow(["true" if v is True else "false" if v is False else "" if v is None else v
                         for v in row.values()])  # fmt: skip
        n += 1
        if n % 2000 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


async def register_json(rows: AsyncIterator[dict[str, object]]) -> AsyncIterator[str]:
    """The register as one JSON list of objects with the same keys as the CSV's columns."""
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps makes one per call
    chunk = ["["]
    separator = "\n  "
    async for row in rows:
        chunk.append(separator + encode(row))
        separator = ",\n  "
        if len(chunk) >= 2000:
            yield "".join(chunk)
            chunk = []
    chunk.append("\n]\n")
    yield "".join(chunk)


def _value(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    if value is None or value == "":
        return "—"
    return str(value)


def _changes(entry: HistoryEntry) -> str:
    keys = list(dict.fromkeys([*entry.before, *entry.after]))
    parts = []
    for key in keys:
        if key in entry.before and key in entry.after:
            parts.append(f"{key}: {_value(entry.before[key])} → {_value(entry.after[key])}")
        elif key in entry.after:
            parts.append(f"{key}: {_value(entry.after[key])}")
        else:
            parts.append(f"{key}: {_value(entry.before[key])} → (none)")
    return "; ".join(parts)


def history_text(case: Case, entries: list[HistoryEntry], *, tz: ZoneInfo) -> str:
    """The case's full history, oldest first: when, who, what, the facts before → after, and the
    text typed (empty once retention has erased it)."""
    head = (
        f"{case.ref} · {kind_label(case.kind)} · received {case.received_date.isoformat()} · "
        f"due {case.due_date.isoformat()} · {case.status}"
        + (f" · personal data erased {case.erased_at.astimezone(tz):%Y-%m-%d}" if case.erased_at else "")
    )
    lines = [head, ""]
    width = max((len(e.actor) for e in entries), default=6)
    for e in entries:
        when = e.at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
        line = f"{when}  {e.actor:<{width}}  {e.action}"
        changes = _changes(e)
        if changes:
            line += f"  {changes}"
        if e.text:
            line += f"  text: {json.dumps(e.text, ensure_ascii=False)}"
        lines.append(line)
    return "\n".join(lines) + "\n"
