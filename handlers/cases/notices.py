"""Dates as staff read them in Slack ("30 June 2026"). What we write to the requester, in their
language, is in `handlers.mail_out.letters` and the editable templates."""

from __future__ import annotations

from datetime import date

__all__ = ["long_date"]


def long_date(day: date) -> str:
    """ "30 June 2026"."""
    return f"{day.day} {day:%B %Y}"
