"""The figures of the weekly summary, `/privacy stats` and the report, with one set of definitions.

- **received**: a case counts in the period of its receipt date (the local calendar date of its
  arrival); **resolved in a period**: by the local date it was resolved.
- **on time**: resolved on or before its due date as it stood then (extensions included);
  **on-time rate**: on time / resolved (None when nothing was resolved).
- **days to answer**: calendar days from the receipt date to the local date of resolution;
  the median and the 90th percentile (nearest rank) over the resolved cases.
- **extended**: cases whose deadline was extended; **complaints**: cases that carry a complaint.
- **overdue**: open with a due date before today; **due within N days**: open, due from today
  to today + N. With `CLOCK_PAUSE_ON_WAIT`, a case waiting for the requester is neither (its
  clock stands still); the listings of `storage/overview.py` take the same `skip_paused`.

Facts only: no name, address or text of a case is read here.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.clock import Clock
from storage.db import Session

__all__ = ["Figures", "OpenFigures", "Stats", "figures_of"]

_COLUMNS = (
    "SELECT kind, labels, language, status, outcome, received_date, closed_at, resolved_on_time, "
    "extended_at FROM cases"
)


@dataclass(frozen=True, slots=True)
class Figures:
    """What happened to a population of cases (received, or resolved, in a period)."""

    cases: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_language: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    on_time: int = 0
    on_time_rate: float | None = None
    median_days_to_answer: float | None = None
    p90_days_to_answer: float | None = None
    extended: int = 0
    complaints: int = 0


@dataclass(frozen=True, slots=True)
class OpenFigures:
    """Where the open cases stand today."""

    open: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    due_soon: int = 0
    unassigned: int = 0
    extended: int = 0


def figures_of(rows: list[tuple[object, ...]], tz: ZoneInfo) -> Figures:
    """The figures of a population from `_COLUMNS` rows."""
    by_kind: Counter[str] = Counter()
    by_outcome: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    resolved = on_time = extended = complaints = 0
    days: list[int] = []
    for kind, labels, language, status, outcome, received, closed, timely, extended_at in rows:
        by_kind[str(kind)] += 1
        by_language[str(language)] += 1
        if "complaint" in json.loads(str(labels) or "[]") or kind == "complaint":
            complaints += 1
        if extended_at:
            extended += 1
        if status != "resolved" or not closed:
            continue
        resolved += 1
        by_outcome[str(outcome or "unknown")] += 1
        on_time += 1 if timely else 0
        closed_day = datetime.fromisoformat(str(closed)).astimezone(tz).date()
        days.append((closed_day - date.fromisoformat(str(received))).days)
    days.sort()
    return Figures(
        cases=len(rows),
        by_kind=dict(sorted(by_kind.items())),
        by_outcome=dict(sorted(by_outcome.items())),
        by_language=dict(sorted(by_language.items())),
        resolved=resolved,
        on_time=on_time,
        on_time_rate=round(on_time / resolved, 4) if resolved else None,
        median_days_to_answer=float(statistics.median(days)) if days else None,
        p90_days_to_answer=float(days[math.ceil(0.9 * len(days)) - 1]) if days else None,
        extended=extended,
        complaints=complaints,
    )


def _start_of(day: date, tz: ZoneInfo) -> str:
    """The UTC storage form of local midnight at the start of `day`."""
    return datetime.combine(day, time(), tz).astimezone(UTC).isoformat(timespec="seconds")


class Stats:
    """Figures over the cases, on one session (use the read-only connection)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def received(self, first: date | None, last: date | None, *, tz: ZoneInfo) -> Figures:
        """Cases received from `first` to `last` (local dates, both included; None: unbounded)."""
        where, params = [], []
        if first is not None:
            where.append("received_date >= ?")
            params.append(first.isoformat())
        if last is not None:
            where.append("received_date <= ?")
            params.append(last.isoformat())
        sql = _COLUMNS + (f" WHERE {' AND '.join(where)}" if where else "")
        return figures_of([tuple(r) for r in await self._db.all(sql, params)], tz)

    async def resolved(self, first: date, last: date, *, tz: ZoneInfo) -> Figures:
        """Cases resolved from `first` to `last` (local dates, both included)."""
        rows = await self._db.all(
            f"{_COLUMNS} WHERE status = 'resolved' AND closed_at >= ? AND closed_at < ?",
            (_start_of(first, tz), _start_of(last + timedelta(days=1), tz)),
        )
        return figures_of([tuple(r) for r in rows], tz)

    async def open_now(self, today: date, *, due_within: int = 7, pause_clock: bool = False) -> OpenFigures:
        """The open cases today: by kind and status, overdue, due within `due_within` days. With
        `pause_clock` (CLOCK_PAUSE_ON_WAIT), a case waiting for the requester is neither overdue nor
        due: its clock stands still and its due date moves when the wait ends."""
        rows = await self._db.all(
            "SELECT kind, status, due_date, assignee, extended_at, waiting_since FROM cases WHERE status != 'resolved'"
        )
        soon = (today + timedelta(days=due_within)).isoformat()
        now = today.isoformat()
        running = [r for r in rows if not (pause_clock and r[5])]
        return OpenFigures(
            open=len(rows),
            by_kind=dict(sorted(Counter(str(r[0]) for r in rows).items())),
            by_status=dict(sorted(Counter(str(r[1]) for r in rows).items())),
            overdue=sum(1 for r in running if r[2] < now),
            due_soon=sum(1 for r in running if now <= r[2] <= soon),
            unassigned=sum(1 for r in rows if not r[3]),
            extended=sum(1 for r in rows if r[4]),
        )
