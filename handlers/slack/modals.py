"""Modals for the case actions, as plain Block Kit dicts (pure functions).

Each modal's `callback_id` names the action, its `private_metadata` carries only the case id (the
case is read again from the database on submission, and who submits is checked again), and each
input's `block_id` and `action_id` are the field name that `TransitionError.field` refers to.
"""

from __future__ import annotations

import json
from datetime import date

from core.vocabulary import IDENTITY_METHODS, KINDS, OUTCOME_LABELS, WAITING_LABELS, kind_label
from handlers.cases.inventory import Inventory
from handlers.cases.notices import long_date
from handlers.mail_out.templates import OFFERED
from handlers.slack.blocks import escape_mrkdwn
from storage.models import Case

__all__ = [
    "change_type_view",
    "extend_view",
    "metadata_of",
    "recipient_choices",
    "reopen_view",
    "reply_view",
    "resolve_view",
    "template_of",
    "values_of",
    "verify_view",
    "wait_view",
]

NO_RECIPIENTS = "No recipients to inform"


def _text(text: str) -> dict[str, object]:
    return {"type": "plain_text", "text": text[:2000], "emoji": False}


def _shown(text: str) -> dict[str, object]:
    """A requester's address (or other text from their email) as Slack must show it: plain_text,
    where no formatting, mention or link applies, escaped, on one line."""
    return {"type": "plain_text", "text": escape_mrkdwn(" ".join(text.split()))[:2000], "emoji": False}


def _option(value: str, text: str) -> dict[str, object]:
    return {"text": _text(text[:75]), "value": value}


def _modal(
    callback_id: str, case: Case, title: str, submit: str, blocks: list[dict[str, object]]
) -> dict[str, object]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps({"case_id": case.id}),
        "title": _text(title[:24]),
        "submit": _text(submit[:24]),
        "close": _text("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": _shown(
                    f"{case.ref} · {kind_label(case.kind)} · {case.requester_email or 'unknown sender'}"
                ),
            },
            *blocks,
        ],
    }


def _input(
    field: str, label: str, element: dict[str, object], *, optional: bool = False, hint: str | None = None
) -> dict[str, object]:
    block: dict[str, object] = {
        "type": "input",
        "block_id": field,
        "label": _text(label),
        "element": {**element, "action_id": field},
        "optional": optional,
    }
    if hint:
        block["hint"] = _text(hint)
    return block


def _note(
    field: str, label: str, *, optional: bool, placeholder: str = "", initial: str = ""
) -> dict[str, object]:
    element: dict[str, object] = {"type": "plain_text_input", "multiline": True, "max_length": 3000}
    if placeholder:
        element["placeholder"] = _text(placeholder[:150])
    if initial:
        element["initial_value"] = initial[:3000]
    return _input(field, label, element, optional=optional)


def change_type_view(case: Case) -> dict[str, object]:
    """Set the case's kinds: every right asked for, and which one is primary."""
    options = [_option(k, kind_label(k)) for k in KINDS]
    by_value = {o["value"]: o for o in options}
    return _modal(
        "case.change_type",
        case,
        "Change type",
        "Save",
        [
            _input(
                "primary",
                "Main type",
                {
                    "type": "static_select",
                    "options": options,
                    "initial_option": by_value.get(case.kind, options[-1]),
                },
            ),
            _input(
                "labels",
                "Other rights asked for",
                {
                    "type": "multi_static_select",
                    "options": options,
                    **(
                        {"initial_options": [by_value[k] for k in case.labels[1:] if k in by_value]}
                        if len(case.labels) > 1
                        else {}
                    ),
                },
                optional=True,
            ),
        ],
    )


def verify_view(case: Case) -> dict[str, object]:
    """Record how the requester's identity was established."""
    return _modal(
        "case.verify",
        case,
        "Verify identity",
        "Record",
        [
            _input(
                "method",
                "How was the identity verified?",
                {
                    "type": "radio_buttons",
                    "options": [_option(k, v.capitalize()) for k, v in IDENTITY_METHODS.items()],
                },
            ),
            _note("note", "Note", optional=True, placeholder="e.g. which document, or why it is not needed"),
        ],
    )


def extend_view(case: Case, *, one_month_due: date, extended_due: date) -> dict[str, object]:
    """Extend by two months: the reason is required, and the notice must reach the requester in time."""
    return _modal(
        "case.extend",
        case,
        "Extend deadline",
        "Extend",
        [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "verbatim": True,
                    "text": (
                        f"The new due date will be *{long_date(extended_due)}* (receipt + 3 months, GDPR art. 12(3)). "
                        f"The requester must be told, with the reasons, by *{long_date(one_month_due)}*."
                    ),
                },
            },
            _note(
                "reason",
                "Reason for the extension",
                optional=False,
                placeholder="e.g. large archive search across several systems",
            ),
        ],
    )


def wait_view(case: Case, *, pause_clock: bool) -> dict[str, object]:
    """Wait for the requester: identity documents or a clarification."""
    clock = (
        "The legal clock is paused until they answer."
        if pause_clock
        else "The legal clock keeps running while you wait."
    )
    return _modal(
        "case.wait",
        case,
        "Awaiting requester",
        "Save",
        [
            _input(
                "waiting_for",
                "Waiting for",
                {
                    "type": "radio_buttons",
                    "options": [_option(k, v.capitalize()) for k, v in WAITING_LABELS.items()],
                },
                hint=clock + " Their answer ends the wait by itself.",
            ),
            _note("note", "Note", optional=True),
        ],
    )


def recipient_choices(inventory: Inventory | None) -> list[str]:
    """Recipients to report under art. 19: the inventory's third parties and outside services."""
    names = (
        [s.name for s in inventory.systems if s.third_party or "notify" in s.actions.values()]
        if inventory
        else []
    )
    return [*names, NO_RECIPIENTS]


def resolve_view(case: Case, *, inventory: Inventory | None) -> dict[str, object]:
    """Close the case: outcome, a note, and for erasure and rectification the recipients informed."""
    blocks: list[dict[str, object]] = [
        _input(
            "outcome",
            "Outcome",
            {"type": "radio_buttons", "options": [_option(k, v) for k, v in OUTCOME_LABELS.items()]},
        ),
        _note("note", "Note", optional=False, placeholder="What was done, what the requester was told"),
    ]
    if any(k in ("erasure", "rectification") for k in case.labels):
        blocks.append(
            _input(
                "recipients",
                "Recipients informed (art. 19)",
                {
                    "type": "checkboxes",
                    "options": [_option(n[:150], n) for n in recipient_choices(inventory)],
                },
                optional=True,
                hint="Required when the request is (partly) fulfilled.",
            )
        )
    if not case.identity_settled and any(k in ("access", "portability", "erasure") for k in case.labels):
        blocks.insert(
            0,
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": (
                            ":warning: Identity is not verified yet: this case cannot be resolved as fulfilled."
                        ),
                    }
                ],
            },
        )
    return _modal("case.resolve", case, "Resolve case", "Resolve", blocks)


def reply_view(
    case: Case, *, pause_clock: bool, initial: str = "", template: str = "", wait_for: str = ""
) -> dict[str, object]:
    """Write to the requester (sent by email from the privacy address, threaded to their mail).

    A template picked from the menu (`template`, see `OFFERED`) pre-fills the message (`initial`)
    in the requester's language: the listener re-renders the modal with it, the message field
    under a new block_id so that Slack shows the new text. The template is remembered in
    `private_metadata`; `wait_for` pre-selects what to wait for (identity, for an identity request)."""
    clock = "paused until they answer" if pause_clock else "keeps running while you wait"
    menu: dict[str, object] = {
        "type": "static_select",
        "action_id": "case.reply_template",
        "placeholder": _text("Start from a template…"),
        "options": [_option(name, label) for name, label in OFFERED.items()],
    }
    if template in OFFERED:
        menu["initial_option"] = _option(template, OFFERED[template])
    body = _note("body", "Message", optional=False, initial=initial)
    if template:
        body["block_id"] = f"body~{template}"
    waiting: dict[str, object] = {
        "type": "radio_buttons",
        "options": [_option(k, v.capitalize()) for k, v in WAITING_LABELS.items()],
    }
    if wait_for in WAITING_LABELS:
        waiting["initial_option"] = _option(wait_for, WAITING_LABELS[wait_for].capitalize())
    view = _modal(
        "case.reply",
        case,
        "Reply to requester",
        "Send",
        [
            {
                "type": "context",
                "elements": [
                    _shown(
                        f"To {case.requester_email}, from the privacy address, with {case.ref} in the subject."
                    )
                ],
            },
            {"type": "actions", "block_id": "template", "elements": [menu]},
            body,
            _input(
                "wait_for",
                "Then wait for the requester's answer?",
                waiting,
                optional=True,
                hint=f"Leave empty if you expect no answer. The legal clock {clock}."
                + (" Asking for identity always waits for it." if template == "identity_request" else ""),
            ),
        ],
    )
    view["private_metadata"] = json.dumps({"case_id": case.id, "template": template})
    return view


def reopen_view(case: Case) -> dict[str, object]:
    """Reopen a resolved case, with a reason."""
    return _modal(
        "case.reopen", case, "Reopen case", "Reopen", [_note("reason", "Why reopen it?", optional=False)]
    )


def metadata_of(view: dict[str, object]) -> int:
    """The case id a submitted modal is about (`private_metadata`, written by us; read back with care)."""
    try:
        data = json.loads(str(view.get("private_metadata") or "{}"))
        return int(data["case_id"])
    except (ValueError, KeyError, TypeError):
        return 0


def template_of(view: dict[str, object]) -> str:
    """The template a Reply modal was filled from (`private_metadata`), or ""."""
    try:
        template = json.loads(str(view.get("private_metadata") or "{}")).get("template", "")
    except (ValueError, AttributeError):
        return ""
    return template if template in OFFERED else ""


def values_of(view: dict[str, object]) -> dict[str, object]:
    """The submitted values by field (a block_id's `~…` suffix, which makes Slack show a new
    initial value, is not part of the field): a string, a list of strings, or None."""
    out: dict[str, object] = {}
    state = view.get("state") or {}
    values = state.get("values") if isinstance(state, dict) else None
    for block_id, actions in (values or {}).items():
        block_id = block_id.split("~")[0]
        for value in actions.values():
            kind = value.get("type")
            if kind in ("static_select", "radio_buttons"):
                chosen = value.get("selected_option")
                out[block_id] = chosen.get("value") if chosen else None
            elif kind in ("multi_static_select", "checkboxes"):
                out[block_id] = [o.get("value") for o in value.get("selected_options") or []]
            elif kind == "users_select":
                out[block_id] = value.get("selected_user")
            else:
                out[block_id] = value.get("value")
    return out
