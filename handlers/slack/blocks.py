"""Block Kit for cases and emails, built as plain dicts from stored records (pure functions).

What a sender wrote (names, addresses, subject, attachment names) is shown in `plain_text`
objects: Slack never reads mrkdwn, mentions or links there, so `*bold*`, `_italic_`, `~strike~`,
backticks, `<!channel>` and `<http://evil|bank.com>` show as the characters they are. The body
is shown preformatted (```), where Slack applies no formatting either. On top of that every piece
of it is escaped (`&`, `<`, `>`: Slack reads these three as entities in every text object), its
invisible direction and zero-width characters and control characters are shown as `[U+202E]`,
a link whose text hides where it goes (`https://bаnk.example`, `https://bank.example@evil.example`)
is followed by its real host, and a single-line field has its line breaks collapsed, so an
encoded newline in a name cannot start a fake label. Every string is cut to Slack's limits
(3000 characters per section, 2000 per field, 150 per header, 50 blocks per message).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from core.vocabulary import IDENTITY_LABELS, OUTCOME_LABELS, STATUS_LABELS, WAITING_LABELS, kind_label
from handlers.cases.actions import new_rights
from handlers.cases.deadlines import days_left
from handlers.mail_in.lookalike import ascii_domain
from handlers.mail_in.sender_check import LOOKALIKE
from storage.models import Case, ChecklistItem, StoredEmail

__all__ = [
    "ROOT_EVENT_TYPE",
    "case_metadata",
    "case_root_blocks",
    "case_root_text",
    "email_metadata",
    "email_reply",
    "escape_mrkdwn",
    "mention",
]

ROOT_EVENT_TYPE = "privacy_case"
EMAIL_EVENT_TYPE = "privacy_case_email"
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
EMAIL_TEXT_BUDGET = 9000  # characters of email text per thread reply (Slack caps a message near 13k)
ATTACHMENTS_LISTED = 20  # attachments named in a thread reply; the rest are counted

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")


#: Characters that change how text reads without being seen: bidirectional overrides and
#: isolates (`invoice\u202efdp.exe` reads "invoiceexe.pdf"), zero-width spaces and joiners,
#: and control characters (line breaks and tabs excepted).
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
#: A web address as people write it (Slack does not turn it into a link in verbatim or plain text).
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'|`]+", re.IGNORECASE)
_HOST = re.compile(r"^(?:https?://)?(?:(?P<userinfo>[^/?#@]*)@)?(?P<host>[^/?#:]+)", re.IGNORECASE)


def _real_host(url: str) -> str:
    """The host a link goes to when its text hides it: a user part before `@`
    (`https://bank.example@evil.example`) or letters that are not ASCII (`bаnk.example`); else ""."""
    m = _HOST.match(url)
    if m is None:
        return ""
    host = m.group("host").rstrip(".,;:!?)]}")
    if m.group("userinfo") is not None or not host.isascii():
        return ascii_domain(host)
    return ""


def show_links(text: str) -> str:
    """`text` with the real host after each link that hides it: `https://bаnk.example/login
    [goes to xn--bnk-6cd.example]`."""

    def flagged(m: re.Match[str]) -> str:
        host = _real_host(m.group())
        return f"{m.group()} [goes to {host}]" if host else m.group()

    return _URL.sub(flagged, text) if "www." in text.lower() or "://" in text else text


def escape_mrkdwn(text: str) -> str:
    """Escape Slack's control characters so untrusted text renders literally (`&` first), show
    invisible direction, zero-width and control characters as what they are (`[U+202E]`), and
    the real host of a link that hides it (`show_links`)."""
    text = show_links(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _INVISIBLE.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)


def _cut(text: str, limit: int, note: str = "…") -> str:
    """`text` cut to `limit` characters with `note` at the end, never inside an entity (&amp;)."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(note))]
    head = re.sub(r"&[a-z]{0,3}$", "", head)
    return head.rstrip() + note


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _plain(text: str, limit: int = SECTION_LIMIT) -> dict[str, object]:
    """A plain_text object; its text is escaped too (Slack reads &, < and > as entities everywhere)."""
    return {"type": "plain_text", "text": _cut(escape_mrkdwn(text or " "), limit), "emoji": False}


def _mrkdwn(text: str) -> dict[str, object]:
    """A verbatim mrkdwn object; callers escape untrusted parts before building `text`."""
    return {"type": "mrkdwn", "text": _cut(text or " ", SECTION_LIMIT), "verbatim": True}


def mention(user_id: str) -> str:
    """A user mention built only from a validated Slack user id."""
    return f"<@{user_id}>" if _USER_ID.fullmatch(user_id or "") else escape_mrkdwn(user_id or "")


def _fmt_date(d: date) -> str:
    return f"{d.day} {d:%b %Y}"


def _fmt_instant(instant: datetime, tz: ZoneInfo) -> str:
    local = instant.astimezone(tz)
    return f"{local.day} {local:%b %Y %H:%M}"


def _due_phrase(case: Case, today: date) -> str:
    if case.status == "resolved":
        return _fmt_date(case.due_date)
    left = days_left(case.due_date, today)
    if left > 1:
        return f"{_fmt_date(case.due_date)} ({left} days left)"
    if left == 1:
        return f"{_fmt_date(case.due_date)} (1 day left)"
    if left == 0:
        return f"{_fmt_date(case.due_date)} (due today)"
    return f"{_fmt_date(case.due_date)} (:warning: overdue by {-left} day{'s' if left < -1 else ''})"


def _who(name: str, address: str) -> str:
    """ "Name (address)" on one line, unescaped (for a plain_text object)."""
    name, address = _one_line(name), _one_line(address)
    return f"{name} ({address})" if name and address else address or name or "unknown sender"


def _requester_field(case: Case) -> dict[str, object]:
    """The Requester field: the sender's words in plain_text (its label cannot be bold there)."""
    if case.erased_at is not None:
        return _mrkdwn(f"*Requester*\n_Erased on {_fmt_date(case.erased_at.date())}_")
    return _plain(f"Requester\n{_who(case.requester_name, case.requester_email)}", 2000)


def case_metadata(case: Case) -> dict[str, object]:
    """The `privacy_case` message metadata of INTERFACE.md for the case's root message."""
    return {
        "event_type": ROOT_EVENT_TYPE,
        "event_payload": {
            "case_ref": case.ref,
            "message_id": case.message_id,
            "kind": case.kind,
            "status": case.status,
            "due_date": case.due_date.isoformat(),
            "assignee": case.assignee or "",
        },
    }


def case_root_text(case: Case, *, today: date) -> str:
    """The notification text of the root message (escaped; shown where blocks are not)."""
    return escape_mrkdwn(
        f"{case.ref} · {kind_label(case.kind)} · {STATUS_LABELS.get(case.status, case.status)} · "
        f"due {_due_phrase(case, today)}"
    )


@dataclass(frozen=True, slots=True)
class RootContext:
    """What the root shows besides the case itself: checklist progress and linked cases."""

    checklist_done: int = 0
    checklist_total: int = 0
    links: tuple[
        tuple[str, str], ...
    ] = ()  # (relation, case reference), e.g. ("split off", "PRIV-2026-0005")


def _identity(case: Case) -> str:
    if case.identity_status == "not_needed":
        return "Not needed" + (f" ({mention(case.identity_by)})" if case.identity_by else "")
    if case.identity_status == "verified":
        how = IDENTITY_LABELS.get(case.identity_method, case.identity_method)
        return f"Verified: {how}" + (f" ({mention(case.identity_by)})" if case.identity_by else "")
    return "_Not verified_"


def _button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, object]:
    button: dict[str, object] = {
        "type": "button",
        "text": _plain(text, 75),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def case_actions(case: Case) -> list[dict[str, object]]:
    """The buttons of a case root: Claim (and an "Assign to…" picker), Change type, Verify identity,
    Extend, Reply, waiting for the requester, Resolve — or Reopen once resolved."""
    value = str(case.id)
    if case.erased_at is not None:  # nothing is left to work on
        return []
    if not case.is_open:
        return [
            {
                "type": "actions",
                "block_id": f"case-actions-{case.id}",
                "elements": [_button("Reopen", "case.reopen", value)],
            }
        ]
    elements: list[dict[str, object]] = [
        _button("Claim", "case.claim", value, style=None if case.assignee else "primary"),
        {"type": "users_select", "action_id": "case.assign", "placeholder": _plain("Assign to…", 150)},
        _button("Change type", "case.change_type", value),
        _button("Verify identity", "case.verify", value),
    ]
    if case.extended_at is None and case.kind != "complaint":
        elements.append(_button("Extend", "case.extend", value))
    elements.append(_button("Reply", "case.reply", value))
    if case.status == "awaiting_requester":
        elements.append(_button("Requester answered", "case.answered", value))
    else:
        elements.append(_button("Awaiting requester", "case.wait", value))
    elements.append(_button("Resolve", "case.resolve", value, style="primary" if case.assignee else None))
    return [{"type": "actions", "block_id": f"case-actions-{case.id}", "elements": elements}]


def case_root_blocks(
    case: Case, *, today: date, tz: ZoneInfo, context: RootContext | None = None
) -> list[dict[str, object]]:
    """The root message of a case: reference, kind, requester, received, due date with days left,
    status, assignee and identity; warnings (forged sender?, type to confirm, unreadable message);
    waiting, extension and resolution; checklist progress and linked cases; the action buttons."""
    context = context or RootContext()
    other_labels = [kind_label(x) for x in case.labels if x != case.kind]
    kind_text = kind_label(case.kind) + (f" + {', '.join(other_labels)}" if other_labels else "")
    assignee = mention(case.assignee) if case.assignee else "_Unassigned_"
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": _plain(f"{case.ref} · {kind_label(case.kind)}", HEADER_LIMIT)},
        {
            "type": "section",
            "fields": [
                _requester_field(case),
                _mrkdwn(f"*Kind*\n{kind_text}"),
                _mrkdwn(f"*Received*\n{_fmt_instant(case.received_at, tz)}"),
                _mrkdwn(f"*Due*\n{_due_phrase(case, today)}"),
                _mrkdwn(f"*Status*\n{STATUS_LABELS.get(case.status, case.status)}"),
                _mrkdwn(f"*Assignee*\n{assignee}"),
                _mrkdwn(f"*Identity*\n{_identity(case)}"),
            ],
        },
    ]
    if case.subject:
        blocks.append({"type": "context", "elements": [_plain(f"Subject: {_one_line(case.subject)}", 2000)]})
    warnings: list[str | dict[str, object]] = []
    if case.sender_check == "fail" and case.sender_check_detail.startswith(LOOKALIKE):
        warnings.extend(_lookalike_warning(case.sender_check_detail))
    elif case.sender_check == "fail":
        warnings.append(
            ":rotating_light: *The sender failed our mail server's checks "
            f"({escape_mrkdwn(case.sender_check_detail)}).* "
            "This may be a forged request for someone else's data: confirm the requester's identity through "
            "another channel before disclosing or erasing anything."
        )
    if case.unreadable:
        warnings.append(":warning: The email could not be read as an email; the raw message is stored.")
    if case.needs_review:
        warnings.append(
            f":grey_question: Please confirm the type: classified as {kind_label(case.kind)} "
            f"with confidence {case.confidence:.2f}."
        )
    if warnings and case.erased_at is None:
        blocks.append(
            {"type": "context", "elements": [w if isinstance(w, dict) else _mrkdwn(w) for w in warnings]}
        )
    facts = []
    if case.status == "awaiting_requester" and case.waiting_since is not None:
        what = WAITING_LABELS.get(case.waiting_for, "an answer")
        facts.append(
            f":hourglass_flowing_sand: Waiting for the requester since "
            f"{_fmt_date(case.waiting_since.astimezone(tz).date())} ({what})."
        )
    if case.extended_at is not None:
        facts.append(
            f":calendar: Extended on {_fmt_date(case.extended_at.astimezone(tz).date())}: "
            f"{_cut(escape_mrkdwn(case.extension_reason), 300)}"
        )
    if not case.is_open and case.outcome:
        closed = _fmt_date(case.closed_at.astimezone(tz).date()) if case.closed_at else "?"
        timing = "on time" if case.resolved_on_time else "late"
        facts.append(
            f":white_check_mark: Resolved {closed}: {OUTCOME_LABELS.get(case.outcome, case.outcome)} ({timing})."
        )
    if case.erased_at is not None:
        facts.append(
            f":wastebasket: Personal data erased on {_fmt_date(case.erased_at.astimezone(tz).date())} under the "
            "retention policy; the thread's messages were deleted."
        )
    if context.checklist_total:
        facts.append(f":ballot_box_with_check: Checklist {context.checklist_done}/{context.checklist_total}")
    for relation, ref in context.links:
        facts.append(f":link: {relation} {ref}")
    if facts:
        blocks.append({"type": "context", "elements": [_mrkdwn(f) for f in facts[:10]]})
    blocks.extend(case_actions(case))
    return blocks


def _lookalike_warning(detail: str) -> list[dict[str, object]]:
    """The warning for a sender at a domain posing as ours; the domain itself (the sender's
    words) in plain_text."""
    return [
        _mrkdwn(
            ":rotating_light: *The sender's address only looks like ours.* It is not a colleague and not "
            "our own mail: treat it as an outside sender posing as us, and confirm any instruction in it "
            "through another channel."
        ),
        _plain(detail, 500),
    ]


def checklist_message(case: Case, items: list[ChecklistItem]) -> tuple[str, list[dict[str, object]]]:
    """The thread message with the data-system checklist: one checkbox per system (ten per group,
    Slack's limit), ticked when done."""
    if not items:
        text = f"Data-system checklist for {case.ref}: none for this type"
        return text, [
            {
                "type": "section",
                "text": _mrkdwn(
                    "*Data-system checklist* · none: this type of case asks nothing of our systems."
                ),
            }
        ]
    done = sum(1 for i in items if i.done)
    text = f"Data-system checklist for {case.ref}: {done}/{len(items)} done"
    blocks: list[dict[str, object]] = [
        {
            "type": "section",
            "text": _mrkdwn(
                f"*Data-system checklist* · {done}/{len(items)} done\nWhere the requester's data may live, and what "
                "this case asks there. Tick each one off when it is done."
            ),
        }
    ]
    for start in range(0, len(items), 10):
        group = items[start : start + 10]
        options = [
            {"text": _plain(i.name, 75), "description": _plain(i.label, 75), "value": str(i.id)}
            for i in group
        ]
        element: dict[str, object] = {"type": "checkboxes", "action_id": "case.checklist", "options": options}
        initial = [o for o, i in zip(options, group, strict=True) if i.done]
        if initial:
            element["initial_options"] = initial
        blocks.append(
            {"type": "actions", "block_id": f"checklist-{case.id}-{start // 10}", "elements": [element]}
        )
    return text, blocks


def note_blocks(text: str) -> list[dict[str, object]]:
    """A thread note (its text is built by us, with anything typed by people already escaped)."""
    return [{"type": "section", "text": _mrkdwn(_cut(text, SECTION_LIMIT))}]


def notice_note_blocks(text: str, case: Case) -> list[dict[str, object]]:
    """An extension note, with a button that opens the Reply modal with the notice filled in."""
    return [
        *note_blocks(text),
        {
            "type": "actions",
            "elements": [
                _button(
                    "Send this notice to the requester", "case.reply_notice", str(case.id), style="primary"
                )
            ],
        },
    ]


def checklist_metadata(case: Case) -> dict[str, object]:
    """Metadata of a case's checklist message (lets a restart find it again)."""
    return {"event_type": "privacy_case_checklist", "event_payload": {"case_ref": case.ref}}


def note_metadata(case: Case, note_id: int) -> dict[str, object]:
    """Metadata of a thread note (lets a restart find it again)."""
    return {"event_type": "privacy_case_note", "event_payload": {"case_ref": case.ref, "note_id": note_id}}


def email_metadata(case: Case, email: StoredEmail) -> dict[str, object]:
    """Metadata of the thread reply that shows an email (lets a restart find it again)."""
    return {
        "event_type": EMAIL_EVENT_TYPE,
        "event_payload": {"case_ref": case.ref, "message_id": email.message_id},
    }


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


def _text_sections(text: str, budget: int) -> tuple[list[dict[str, object]], int]:
    """The email text as preformatted, escaped sections whose escaped length stays within
    `budget`; returns the blocks and how many characters of `text` were left out."""
    rest = text.replace("```", "ʼʼʼ")
    blocks: list[dict[str, object]] = []
    room = budget
    chunk_limit = SECTION_LIMIT - 8  # the fences
    while rest and room > 0:
        piece = rest[: min(chunk_limit, room)]
        if len(rest) > len(piece) and "\n" in piece[len(piece) // 2 :]:
            piece = piece[: piece.rindex("\n")]  # prefer to break at a line end
        escaped = escape_mrkdwn(piece)
        while len(escaped) > min(chunk_limit, room):  # entities lengthen the text; shrink until it fits
            piece = piece[: max(1, int(len(piece) * 0.8))]
            escaped = escape_mrkdwn(piece)
            if len(piece) == 1:
                break
        if len(escaped) > room:
            break
        blocks.append({"type": "section", "text": _mrkdwn(f"```{escaped}```")})
        room -= len(escaped)
        rest = rest[len(piece) :].lstrip("\n")
    return blocks, len(rest)


def email_reply(
    email: StoredEmail, case: Case, *, tz: ZoneInfo, opening: bool
) -> tuple[str, list[dict[str, object]]]:
    """The thread reply showing an email: who sent it and when, subject, the new text (quoted
    history folded away, long text cut with a note), attachments, and the classification."""
    when = _fmt_instant(email.received_at, tz)
    sender = _cut(_who(email.from_name, email.from_addr), 1000)
    if email.automated:
        text = f"Automatic message received on {when} ({kind_label(email.kind)})"
        reasons = "; ".join(email.reasons)[:500]
        blocks: list[dict[str, object]] = [
            {
                "type": "context",
                "elements": [
                    _mrkdwn(f":robot_face: *{kind_label(email.kind)}* received {when}"),
                    _plain(f"From: {sender}", 1000),
                    _plain(f"Subject: {_one_line(email.subject)}" if email.subject else "(no subject)", 1000),
                    _plain(f"Recognised by: {reasons}" if reasons else "Recognised as machine traffic", 1000),
                ],
            },
        ]
        return text, blocks

    title = "Email that opened the case" if opening else "Follow-up email"
    text = escape_mrkdwn(f"{title} · {case.ref} · received {when}")
    blocks = [
        {"type": "section", "text": _mrkdwn(f"*{title}* · received {when}")},
        {
            "type": "context",
            "elements": [
                _plain(f"From: {sender}", 2000),
                _plain(f"Subject: {_one_line(email.subject) or '(no subject)'}", 2000),
            ],
        },
    ]
    if email.sender_check == "fail" and email.sender_check_detail.startswith(LOOKALIKE):
        blocks.append({"type": "context", "elements": _lookalike_warning(email.sender_check_detail)})
    elif email.sender_check == "fail":
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        ":rotating_light: *Our mail server says this sender may be forged "
                        f"({escape_mrkdwn(email.sender_check_detail)}).* Do not treat it as the requester's "
                        "answer without checking another way."
                    )
                ],
            }
        )
    requester = (case.requester_email or "").lower()
    if not opening and requester and requester not in (email.from_addr.lower(), email.reply_to.lower()):
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(":warning: This follow-up does not come from the requester's address.")],
            }
        )
    if email.unreadable:
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(
                    ":warning: *This message could not be read as an email.* The raw message is stored in the "
                    "database; what could be read is shown below."
                ),
            }
        )
    body = email.new_text or ("" if email.quoted_text else email.body_text)
    if body.strip():
        sections, cut = _text_sections(body, EMAIL_TEXT_BUDGET)
        blocks.extend(sections)
        if cut:
            blocks.append(
                {
                    "type": "context",
                    "elements": [_plain(f"Text cut here: {cut:,} more characters are stored with the case.")],
                }
            )
    else:
        blocks.append({"type": "context", "elements": [_plain("(no text of its own)")]})
    folded = []
    if email.quoted_text.strip():
        folded.append(f"quoted history ({email.quoted_text.count(chr(10)) + 1} lines)")
    if email.signature.strip():
        folded.append("signature")
    if folded:
        blocks.append({"type": "context", "elements": [_plain("Folded away: " + ", ".join(folded) + ".")]})
    if email.attachments:
        listed = email.attachments[:ATTACHMENTS_LISTED]
        lines = [
            f"• {_cut(escape_mrkdwn(_one_line(str(a.get('filename', '?')))), 150)} "
            f"({_cut(escape_mrkdwn(_one_line(str(a.get('content_type', '?')))), 80)}, "
            f"{_size(int(str(a.get('size', 0))))})"
            for a in listed
        ]
        more = max(email.attachment_count, len(email.attachments)) - len(listed)
        if more > 0:
            lines.append(f"… and {more:,} more")
        total = len(listed) + max(more, 0)
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"Attachments ({total:,}, not stored):\n" + "\n".join(lines), SECTION_LIMIT),
                    "emoji": False,
                },
            }
        )
    blocks.append({"type": "context", "elements": [_classification_line(email)]})
    if email.reasons:
        reasons = "; ".join(email.reasons)
        blocks.append({"type": "context", "elements": [_plain(f"Why: {_cut(reasons, 1500)}", 2000)]})
    extra = [] if opening or email.split_case_id else new_rights(email, case)
    if extra:
        asked = ", ".join(kind_label(k) for k in extra)
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(
                    f":twisted_rightwards_arrows: This follow-up asks for {asked}, which the case does not cover. "
                    "A new right gets its own receipt date and deadline."
                ),
                "accessory": _button("Split into a new case", "case.split", str(email.id)),
            }
        )
    if email.problems and not email.unreadable:
        blocks.append(
            {
                "type": "context",
                "elements": [_plain("Parser notes: " + _cut("; ".join(email.problems), 500), 1000)],
            }
        )
    return text, blocks[:50]


def _classification_line(email: StoredEmail) -> dict[str, object]:
    others = [kind_label(x) for x in email.labels if x != email.kind]
    label = kind_label(email.kind) + (f" + {', '.join(others)}" if others else "")
    return _mrkdwn(f"Classified as *{label}* · confidence {email.confidence:.2f} · language {email.language}")
