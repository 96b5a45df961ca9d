"""Privacy Desk's behaviour: intake, classification, deadlines, Slack listeners and digests.

`register(app)` wires every listener module into a Bolt app; each module maps its own action,
view and command ids to functions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(app: Any) -> None:
    """Register every Slack listener module on `app` (a slack-bolt `AsyncApp`)."""
    from handlers import case_listeners

    case_listeners.register(app)
