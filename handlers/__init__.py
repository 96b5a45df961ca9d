"""Privacy Desk's behaviour, in subpackages by concern:

    mail_in/    reading an email: parsing, the sender's new text, machine mail, the sender check
    classify/   what an email asks for: the classifier, its rules and their evaluation
    cases/      case use cases: intake, staff actions, deadlines, the data inventory, notices
    slack/      Slack: listeners, modals, Block Kit, thread notes, posting, the staff directory
    mail_out/   email to the requester: composing and sending by SMTP
    jobs/       scheduled jobs: reminders, the digest and the weekly summary (deadlines.py), the
                intake alarm, the daily refresh of days left, one-off upkeep

`register(app)` wires every listener module into a Bolt app; each module maps its own action,
view and command ids to functions. Imports run one way: `bot` → `handlers` → `storage`, and all
of them may import `core`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(app: Any) -> None:
    """Register every Slack listener module on `app` (a slack-bolt `AsyncApp`)."""
    from handlers.slack import commands, listeners

    listeners.register(app)
    commands.register(app)
