"""The anonymised report (`privacy-desk report`): the figures of `storage.stats` over the cases
received in a period, as text, CSV or JSON. Counts only: no name, address or free text is read."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import date

from core.vocabulary import OUTCOME_LABELS, kind_label
from storage.stats import Figures

__all__ = ["FORMATS", "render_report"]

FORMATS = ("text", "csv", "json")
_LANGUAGES = {"en": "English", "fr": "French", "nl": "Dutch", "de": "German", "und": "not recognised"}


def _as_dict(figures: Figures, first: date | None, last: date | None) -> dict[str, object]:
    return {
        "from": first.isoformat() if first else None,
        "to": last.isoformat() if last else None,
        **asdict(figures),
    }


def render_report(figures: Figures, *, first: date | None, last: date | None, fmt: str) -> str:
    """The report in `fmt` (`text`, `csv` or `json`); each says the same."""
    data = _as_dict(figures, first, last)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["measure", "key", "value"])
        for key, value in data.items():
            if isinstance(value, dict):
                for sub, n in value.items():
                    writer.writerow([key, sub, n])
            else:
                writer.writerow([key, "", "" if value is None else value])
        return out.getvalue()
    return _text(figures, first, last)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def _days(value: float | None) -> str:
    return "—" if value is None else f"{value:g} days"


def _text(f: Figures, first: date | None, last: date | None) -> str:
    period = (
        f"{first.isoformat() if first else 'the first case'} to {last.isoformat() if last else 'today'}"
        if first or last
        else "every case"
    )
    lines = [
        f"Privacy requests: {period} (by date of receipt)",
        "",
        f"Cases received          {f.cases}",
        f"Resolved                {f.resolved}",
        f"  on time               {f.on_time} ({_pct(f.on_time_rate)})",
        f"Days to answer          median {_days(f.median_days_to_answer)}, "
        f"90th percentile {_days(f.p90_days_to_answer)}",
        f"Deadline extended       {f.extended}",
        f"Complaints              {f.complaints}",
    ]
    for title, counts, label in (
        ("By kind", f.by_kind, kind_label),
        ("By outcome", f.by_outcome, lambda k: OUTCOME_LABELS.get(k, k)),
        ("By language", f.by_language, lambda k: _LANGUAGES.get(k, k)),
    ):
        lines += ["", title]
        lines += [f"  {label(k):<40} {n}" for k, n in counts.items()] or ["  —"]
    lines += ["", "Anonymised: counts only, no names, addresses or text of any request."]
    return "\n".join(lines) + "\n"
