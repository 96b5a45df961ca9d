"""Block Kit for cases and emails (handlers/slack/blocks.py), from `Case` and `StoredEmail` records built
here: golden dicts for the root message and its metadata, and hostile or huge email content that
must neither inject Slack syntax nor break Slack's limits (checked with the stand-in's validator).

"Never unescaped" is checked in every text object, `plain_text` as well as `mrkdwn` (Slack reads
`&`, `<` and `>` as entities everywhere), and in the top-level fallback `text`.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from core.vocabulary import kind_label
from handlers.slack.blocks import (
    EMAIL_TEXT_BUDGET,
    case_metadata,
    case_root_blocks,
    case_root_text,
    email_metadata,
    email_reply,
    escape_mrkdwn,
)
from storage.models import Case, StoredEmail
from tests.support.factory import case_record, email_record
from tests.support.slack_standin import validate_blocks

TZ = ZoneInfo("Europe/Brussels")
TODAY = date(2026, 11, 25)
HOSTILE = (
    "<!channel> <!here|here> <@U123> <#C999> <!subteam^S1> <https://x|y> <!date^1^{date}|x> a & b ```rm```"
)
#: Slack control sequences that must never reach a parsed text raw.
CONTROL = re.compile(r"<[!@#]|<https?:|<mailto:|\|[^>]*>")
BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt);)")

CASE = case_record()
EMAIL = email_record()


def case(**changes: object) -> Case:
    return dataclasses.replace(CASE, **changes)  # type: ignore[arg-type]


def stored(**changes: object) -> StoredEmail:
    return dataclasses.replace(EMAIL, **changes)  # type: ignore[arg-type]


def text_objects(blocks: object) -> Iterator[dict[str, object]]:
    """Every text object (plain_text or mrkdwn) anywhere in `blocks`."""
    if isinstance(blocks, dict):
        if blocks.get("type") in ("plain_text", "mrkdwn") and isinstance(blocks.get("text"), str):
            yield blocks
        for value in blocks.values():
            yield from text_objects(value)
    elif isinstance(blocks, list):
        for item in blocks:
            yield from text_objects(item)


def parsed_texts(text: str, blocks: list[dict[str, object]]) -> list[str]:
    """The strings Slack reads entities and control sequences in: the fallback text and every text object."""
    return [text] + [str(o["text"]) for o in text_objects(blocks)]


def all_text(text: str, blocks: list[dict[str, object]]) -> str:
    return "\n".join([text] + [str(o["text"]) for o in text_objects(blocks)])


def assert_valid_message(text: str, blocks: list[dict[str, object]]) -> None:
    """What Slack would accept: Block Kit rules, and the fallback text present and within 40,000."""
    assert validate_blocks(blocks) == []
    assert 0 < len(text) <= 40_000


def assert_nothing_injected(
    text: str, blocks: list[dict[str, object]], *, mentions: tuple[str, ...] = ()
) -> None:
    """No Slack control sequence, bare `&` or extra code fence in any parsed text, except our own mentions."""
    for parsed in parsed_texts(text, blocks):
        for user in mentions:
            parsed = parsed.replace(f"<@{user}>", "")
        assert not CONTROL.search(parsed), parsed[:300]
        assert "<" not in parsed and ">" not in parsed, parsed[:300]
        assert not BARE_AMPERSAND.search(parsed), parsed[-300:]
        if parsed.startswith("```"):
            assert "```" not in parsed[3:-3], parsed[:300]


def shown_text(blocks: list[dict[str, object]]) -> str:
    """The email text shown in the preformatted sections, unescaped."""
    return "".join(
        html.unescape(str(o["text"])[3:-3])
        for o in text_objects(blocks)
        if o["type"] == "mrkdwn" and str(o["text"]).startswith("```")
    )


def context_texts(blocks: list[dict[str, object]]) -> list[str]:
    return [str(o["text"]) for b in blocks if b["type"] == "context" for o in text_objects(b)]


# --- escaping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("", ""),
        ("plain words", "plain words"),
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("&lt;", "&amp;lt;"),  # `&` first: an entity in the input stays visible, not decoded
        ("&amp;", "&amp;amp;"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U123>", "&lt;@U123&gt;"),
        ("<https://x|y>", "&lt;https://x|y&gt;"),
        ("a & b < c > d", "a &amp; b &lt; c &gt; d"),
        ("*bold* _it_ `code`", "*bold* _it_ `code`"),
    ],
)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped
    assert html.unescape(escape_mrkdwn(raw)) == raw


def test_kind_labels() -> None:
    assert kind_label("erasure") == "Erasure (art. 17)"
    assert kind_label("auto_reply") == "Automatic reply"
    assert kind_label("something_new") == "Something new"


# --- the root message -------------------------------------------------------------------------------


def test_case_metadata_is_exactly_the_interface_payload() -> None:
    assert case_metadata(case()) == {
        "event_type": "privacy_case",
        "event_payload": {
            "case_ref": "PRIV-2026-0042",
            "message_id": "<short-access-1@example.org>",
            "kind": "access",
            "status": "new",
            "due_date": "2026-12-24",
            "assignee": "",
        },
    }
    payload = case_metadata(case(assignee="UALICE01", status="extended", kind="erasure"))["event_payload"]
    assert payload == {
        "case_ref": "PRIV-2026-0042",
        "message_id": "<short-access-1@example.org>",
        "kind": "erasure",
        "status": "extended",
        "due_date": "2026-12-24",
        "assignee": "UALICE01",
    }


def test_case_root_blocks_golden() -> None:
    assert case_root_blocks(case(assignee="UALICE01"), today=TODAY, tz=TZ) == [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": "PRIV-2026-0042 · Access (art. 15)", "emoji": False},
        },
        {
            "type": "section",
            "fields": [
                {
                    "type": "plain_text",
                    "text": "Requester\nMarie Dubois (marie.dubois@example.org)",
                    "emoji": False,
                },
                {"type": "mrkdwn", "text": "*Kind*\nAccess (art. 15)", "verbatim": True},
                {
                    "type": "mrkdwn",
                    "text": "*Received*\n24 Nov 2026 21:14",
                    "verbatim": True,
                },  # Brussels time
                {"type": "mrkdwn", "text": "*Due*\n24 Dec 2026 (29 days left)", "verbatim": True},
                {"type": "mrkdwn", "text": "*Status*\nNew", "verbatim": True},
                {"type": "mrkdwn", "text": "*Assignee*\n<@UALICE01>", "verbatim": True},
                {"type": "mrkdwn", "text": "*Identity*\n_Not verified_", "verbatim": True},
            ],
        },
        {"type": "context", "elements": [{"type": "plain_text", "text": "Subject: my data", "emoji": False}]},
        {
            "type": "actions",
            "block_id": "case-actions-7",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Claim", "emoji": False},
                    "action_id": "case.claim",
                    "value": "7",
                },
                {
                    "type": "users_select",
                    "action_id": "case.assign",
                    "placeholder": {"type": "plain_text", "text": "Assign to…", "emoji": False},
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Change type", "emoji": False},
                    "action_id": "case.change_type",
                    "value": "7",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Verify identity", "emoji": False},
                    "action_id": "case.verify",
                    "value": "7",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Extend", "emoji": False},
                    "action_id": "case.extend",
                    "value": "7",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Reply", "emoji": False},
                    "action_id": "case.reply",
                    "value": "7",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Awaiting requester", "emoji": False},
                    "action_id": "case.wait",
                    "value": "7",
                },
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Resolve", "emoji": False},
                    "action_id": "case.resolve",
                    "value": "7",
                    "style": "primary",
                },
            ],
        },
    ]


def test_case_root_text_golden() -> None:
    assert (
        case_root_text(case(), today=TODAY)
        == "PRIV-2026-0042 · Access (art. 15) · New · due 24 Dec 2026 (29 days left)"
    )


def fields(blocks: list[dict[str, object]]) -> dict[str, str]:
    """The root's fields as {"Due": "24 Dec 2026 (…)", …}."""
    [section] = [b for b in blocks if b["type"] == "section"]
    out = {}
    for field in section["fields"]:  # type: ignore[union-attr]
        title, _, value = str(field["text"]).partition("\n")  # type: ignore[index]
        out[title.strip("*")] = value
    return out


@pytest.mark.parametrize(
    ("due", "phrase"),
    [
        (date(2026, 12, 24), "24 Dec 2026 (29 days left)"),
        (date(2026, 11, 27), "27 Nov 2026 (2 days left)"),
        (date(2026, 11, 26), "26 Nov 2026 (1 day left)"),
        (date(2026, 11, 25), "25 Nov 2026 (due today)"),
        (date(2026, 11, 24), "24 Nov 2026 (:warning: overdue by 1 day)"),
        (date(2026, 11, 15), "15 Nov 2026 (:warning: overdue by 10 days)"),
    ],
)
def test_days_left_phrasing(due: date, phrase: str) -> None:
    c = case(due_date=due)
    assert fields(case_root_blocks(c, today=TODAY, tz=TZ))["Due"] == phrase
    assert case_root_text(c, today=TODAY).endswith(f"due {phrase}")


def test_a_resolved_case_shows_its_due_date_without_days_left() -> None:
    c = case(status="resolved", due_date=date(2026, 11, 1))
    assert fields(case_root_blocks(c, today=TODAY, tz=TZ))["Due"] == "1 Nov 2026"
    assert fields(case_root_blocks(c, today=TODAY, tz=TZ))["Status"] == "Resolved"
    assert "overdue" not in case_root_text(c, today=TODAY)


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("new", "New"),
        ("in_progress", "In progress"),
        ("awaiting_requester", "Awaiting requester"),
        ("extended", "Extended"),
        ("resolved", "Resolved"),
    ],
)
def test_status_labels(status: str, label: str) -> None:
    assert fields(case_root_blocks(case(status=status), today=TODAY, tz=TZ))["Status"] == label


@pytest.mark.parametrize(
    ("assignee", "shown"),
    [
        ("UALICE01", "<@UALICE01>"),
        ("WENTERPRISE1", "<@WENTERPRISE1>"),
        ("", "_Unassigned_"),
        ("<!channel>", "&lt;!channel&gt;"),
        ("U1", "U1"),
        ("ualice01", "ualice01"),
        ("UALICE01> <!here", "UALICE01&gt; &lt;!here"),
    ],
)
def test_the_assignee_is_mentioned_only_when_it_is_a_valid_user_id(assignee: str, shown: str) -> None:
    blocks = case_root_blocks(case(assignee=assignee), today=TODAY, tz=TZ)
    assert fields(blocks)["Assignee"] == shown
    assert_nothing_injected("", blocks, mentions=("UALICE01", "WENTERPRISE1"))


def test_an_assignee_with_a_trailing_newline_is_not_a_mention() -> None:
    assert "<@" not in fields(case_root_blocks(case(assignee="UALICE01\n"), today=TODAY, tz=TZ))["Assignee"]


def test_other_labels_are_listed_after_the_kind() -> None:
    c = case(kind="erasure", labels=("erasure", "access", "objection"))
    assert fields(case_root_blocks(c, today=TODAY, tz=TZ))["Kind"] == (
        "Erasure (art. 17) + Access (art. 15), Objection (art. 21)"
    )


def test_no_warning_for_a_readable_case_with_a_confident_type() -> None:
    blocks = case_root_blocks(case(), today=TODAY, tz=TZ)
    assert not any(":warning:" in t or "confirm" in t for t in context_texts(blocks))


def test_needs_review_asks_to_confirm_the_type() -> None:
    blocks = case_root_blocks(case(needs_review=True, kind="objection", confidence=0.41), today=TODAY, tz=TZ)
    [warning] = [t for t in context_texts(blocks) if "confirm" in t]
    assert (
        warning
        == ":grey_question: Please confirm the type: classified as Objection (art. 21) with confidence 0.41."
    )


def test_an_unreadable_case_says_so() -> None:
    blocks = case_root_blocks(
        case(
            unreadable=True,
            needs_review=True,
            kind="other",
            requester_email="",
            requester_name="",
            subject="",
        ),
        today=TODAY,
        tz=TZ,
    )
    texts = context_texts(blocks)
    assert any("could not be read" in t for t in texts)
    assert any("Please confirm the type" in t for t in texts)
    assert fields(blocks)["Requester"] == "unknown sender"
    assert not any(t.startswith("Subject:") for t in texts)
    assert_valid_message("x", blocks)


def test_a_hostile_case_is_escaped_and_valid() -> None:
    c = case(
        requester_name=HOSTILE, requester_email="<@U123>&@example.org", subject=HOSTILE, assignee="<!channel>"
    )
    blocks = case_root_blocks(c, today=TODAY, tz=TZ)
    text = case_root_text(c, today=TODAY)
    assert_valid_message(text, blocks)
    assert_nothing_injected(text, blocks)
    assert "&lt;!channel&gt;" in fields(blocks)["Requester"]
    assert f"Subject: {escape_mrkdwn(HOSTILE)}" in context_texts(blocks)


def test_a_huge_case_stays_within_slacks_limits() -> None:
    c = case(
        requester_name="N" * 100_000,
        requester_email="e" * 50_000 + "@example.org",
        subject="S " * 50_000,
        labels=("access", "erasure", "objection", "restriction", "portability", "rectification"),
    )
    blocks = case_root_blocks(c, today=TODAY, tz=TZ)
    assert_valid_message(case_root_text(c, today=TODAY), blocks)


def test_a_long_hostile_requester_is_not_cut_inside_an_entity() -> None:
    blocks = case_root_blocks(case(requester_name="&" * 1000), today=TODAY, tz=TZ)
    assert_valid_message("x", blocks)
    assert_nothing_injected("x", blocks)


# --- thread replies for emails -------------------------------------------------------------------------


def test_email_metadata() -> None:
    assert email_metadata(case(), stored()) == {
        "event_type": "privacy_case_email",
        "event_payload": {"case_ref": "PRIV-2026-0042", "message_id": "<short-access-1@example.org>"},
    }


def test_the_opening_email_reply() -> None:
    text, blocks = email_reply(stored(), case(), tz=TZ, opening=True)
    assert text == "Email that opened the case · PRIV-2026-0042 · received 24 Nov 2026 21:14"
    assert blocks[0] == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "verbatim": True,
            "text": "*Email that opened the case* · received 24 Nov 2026 21:14",
        },
    }
    assert blocks[1] == {
        "type": "context",
        "elements": [
            {"type": "plain_text", "text": "From: Marie Dubois (marie.dubois@example.org)", "emoji": False},
            {"type": "plain_text", "text": "Subject: my data", "emoji": False},
        ],
    }
    assert shown_text(blocks) == "Hi, can you send me a copy of the personal data you have about me?"
    texts = context_texts(blocks)
    assert "Folded away: signature." in texts
    assert "Classified as *Access (art. 15)* · confidence 0.92 · language en" in texts
    assert "Why: copy of the personal data" in texts
    assert not any("does not come from the requester" in t for t in texts)
    assert_valid_message(text, blocks)


def test_a_follow_up_email_reply() -> None:
    text, blocks = email_reply(
        stored(subject="Re: my data", new_text="Any news?"), case(), tz=TZ, opening=False
    )
    assert text.startswith("Follow-up email · PRIV-2026-0042")
    assert str(blocks[0]["text"]["text"]).startswith("*Follow-up email*")  # type: ignore[index]
    assert shown_text(blocks) == "Any news?"
    assert not any("does not come from the requester" in t for t in context_texts(blocks))
    assert_valid_message(text, blocks)


@pytest.mark.parametrize(
    ("from_addr", "reply_to", "opening", "warned"),
    [
        ("someone.else@example.com", "", False, True),
        ("MARIE.DUBOIS@example.org", "", False, False),
        ("someone.else@example.com", "marie.dubois@example.org", False, False),
        ("someone.else@example.com", "", True, False),
    ],
)
def test_a_follow_up_from_another_address_is_flagged(
    from_addr: str, reply_to: str, opening: bool, warned: bool
) -> None:
    text, blocks = email_reply(stored(from_addr=from_addr, reply_to=reply_to), case(), tz=TZ, opening=opening)
    flagged = any("does not come from the requester" in t for t in context_texts(blocks))
    assert flagged is warned
    assert_valid_message(text, blocks)


def test_an_automated_email_reply_is_one_compact_context() -> None:
    email = stored(
        automated=True,
        kind="auto_reply",
        labels=("auto_reply",),
        subject="Out of office",
        reasons=("Auto-Submitted: auto-replied",),
        new_text="I am away until 3 December.",
    )
    text, blocks = email_reply(email, case(), tz=TZ, opening=False)
    assert text == "Automatic message received on 24 Nov 2026 21:14 (Automatic reply)"
    assert blocks == [
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "verbatim": True,
                    "text": ":robot_face: *Automatic reply* received 24 Nov 2026 21:14",
                },
                {
                    "type": "plain_text",
                    "text": "From: Marie Dubois (marie.dubois@example.org)",
                    "emoji": False,
                },
                {"type": "plain_text", "text": "Subject: Out of office", "emoji": False},
                {"type": "plain_text", "text": "Recognised by: Auto-Submitted: auto-replied", "emoji": False},
            ],
        }
    ]
    assert "away" not in all_text(text, blocks)


def test_an_automated_bounce_without_subject_or_reasons() -> None:
    email = stored(automated=True, kind="bounce", subject="", reasons=())
    text, blocks = email_reply(email, case(), tz=TZ, opening=False)
    assert [o["text"] for o in text_objects(blocks)][2:] == ["(no subject)", "Recognised as machine traffic"]
    assert_valid_message(text, blocks)


def test_an_unreadable_email_reply_warns_and_shows_what_could_be_read() -> None:
    email = stored(
        unreadable=True,
        from_name="",
        from_addr="",
        subject="",
        new_text="please delete my data",
        body_text="please delete my data",
        signature="",
        problems=("no email headers found",),
    )
    text, blocks = email_reply(email, case(unreadable=True), tz=TZ, opening=True)
    assert any("could not be read as an email" in str(o["text"]) for o in text_objects(blocks))
    assert "From: unknown sender" in context_texts(blocks)
    assert "Subject: (no subject)" in context_texts(blocks)
    assert shown_text(blocks) == "please delete my data"
    assert not any(t.startswith("Parser notes") for t in context_texts(blocks))
    assert_valid_message(text, blocks)


def test_parser_notes_are_shown_for_a_readable_email() -> None:
    _, blocks = email_reply(
        stored(problems=("header date: unreadable", "defect X")), case(), tz=TZ, opening=True
    )
    assert "Parser notes: header date: unreadable; defect X" in context_texts(blocks)


def test_quoted_history_is_folded_not_shown() -> None:
    email = stored(
        new_text="Any news about my request?",
        quoted_text="On Tue, Marie wrote:\n> SECRET-HISTORY line one\n> line two",
        signature="-- \nMarie",
        body_text="(whole body)",
    )
    text, blocks = email_reply(email, case(), tz=TZ, opening=False)
    assert shown_text(blocks) == "Any news about my request?"
    assert "SECRET-HISTORY" not in all_text(text, blocks)
    assert "Folded away: quoted history (3 lines), signature." in context_texts(blocks)


def test_an_email_with_only_quoted_history_has_no_text_of_its_own() -> None:
    email = stored(new_text="", quoted_text="> old", signature="", body_text="> old")
    _, blocks = email_reply(email, case(), tz=TZ, opening=False)
    assert shown_text(blocks) == ""
    assert "(no text of its own)" in context_texts(blocks)


def test_the_whole_body_is_shown_when_no_new_text_was_split_out() -> None:
    email = stored(new_text="", quoted_text="", signature="", body_text="Kind regards,\nJo")
    _, blocks = email_reply(email, case(), tz=TZ, opening=False)
    assert shown_text(blocks) == "Kind regards,\nJo"


def test_attachments_are_listed_with_type_and_size() -> None:
    attachments = (
        {"filename": "passport scan.pdf", "content_type": "application/pdf", "size": 12_345},
        {"filename": "photo.png", "content_type": "image/png", "size": 500},
        {"filename": "video.mp4", "content_type": "video/mp4", "size": 3 * 1024 * 1024 + 1},
    )
    text, blocks = email_reply(stored(attachments=attachments), case(), tz=TZ, opening=True)
    [listing] = [str(o["text"]) for o in text_objects(blocks) if str(o["text"]).startswith("Attachments")]
    assert listing == (
        "Attachments (3, not stored):\n"
        "• passport scan.pdf (application/pdf, 12 KB)\n"
        "• photo.png (image/png, 500 B)\n"
        "• video.mp4 (video/mp4, 3.0 MB)"
    )
    assert_valid_message(text, blocks)


def test_many_attachments_are_summarised() -> None:
    attachments = tuple(
        {"filename": f"scan-{i}.jpg", "content_type": "image/jpeg", "size": 2048} for i in range(35)
    )
    text, blocks = email_reply(stored(attachments=attachments), case(), tz=TZ, opening=True)
    [listing] = [str(o["text"]) for o in text_objects(blocks) if str(o["text"]).startswith("Attachments")]
    assert listing.count("•") == 20
    assert listing.endswith("… and 15 more")
    assert_valid_message(text, blocks)


# --- hostile and huge emails -----------------------------------------------------------------------------


def hostile_email(**changes: object) -> StoredEmail:
    return stored(
        **{
            "from_name": HOSTILE,
            "from_addr": "<@U123>@evil.example",
            "reply_to": "<!here>@evil.example",
            "subject": HOSTILE,
            "new_text": HOSTILE + "\n" + HOSTILE,
            "body_text": HOSTILE,
            "quoted_text": HOSTILE,
            "signature": HOSTILE,
            "reasons": (HOSTILE,),
            "problems": (HOSTILE,),
            "attachments": ({"filename": HOSTILE, "content_type": "text/<@U123>&", "size": 1},),
            **changes,
        }
    )


@pytest.mark.parametrize(
    ("opening", "changes"),
    [
        (True, {}),
        (False, {}),
        (False, {"automated": True, "kind": "auto_reply"}),
        (True, {"unreadable": True}),
        (False, {"new_text": "", "quoted_text": ""}),
    ],
    ids=["opening", "follow-up", "automated", "unreadable", "body-text"],
)
def test_hostile_email_content_is_never_parsed_by_slack(opening: bool, changes: dict[str, object]) -> None:
    text, blocks = email_reply(
        hostile_email(**changes), case(requester_email="<!channel>"), tz=TZ, opening=opening
    )
    assert_valid_message(text, blocks)
    assert_nothing_injected(text, blocks)
    if not changes.get("automated"):
        assert "a & b" in shown_text(blocks)  # shown, escaped, not lost


def test_triple_backticks_cannot_close_the_code_block() -> None:
    text, blocks = email_reply(
        stored(new_text="before ``` *bold* <@U123> ``` after ````"), case(), tz=TZ, opening=True
    )
    [code] = [str(o["text"]) for o in text_objects(blocks) if str(o["text"]).startswith("```")]
    assert code.count("```") == 2
    assert "&lt;@U123&gt;" in code
    assert_nothing_injected(text, blocks)


LONG_TEXTS = {
    "50k words": ("privacy request text " * 3000)[:50_000],
    "50k no spaces": "x" * 50_000,
    "50k lines": "line of a long letter\n" * 2300,
    "20k <": "<" * 20_000,
    "20k &": "&" * 20_000,
    "mixed entities": "<@U123> & <!channel>\n" * 2500,
    "backticks": "```" * 10_000,
}


@pytest.mark.parametrize("body", LONG_TEXTS.values(), ids=LONG_TEXTS.keys())
def test_long_text_is_cut_with_a_note_and_stays_valid(body: str) -> None:
    email = stored(new_text=body, body_text=body)
    text, blocks = email_reply(email, case(), tz=TZ, opening=True)
    assert_valid_message(text, blocks)
    assert_nothing_injected(text, blocks)
    shown = shown_text(blocks)
    assert 0 < len(shown) <= EMAIL_TEXT_BUDGET
    [note] = [t for t in context_texts(blocks) if t.startswith("Text cut here")]
    cut = int(re.search(r"([\d,]+) more characters", note).group(1).replace(",", ""))  # type: ignore[union-attr]
    if "\n" not in body:  # the count is exact when no line break was dropped at a chunk boundary
        assert len(shown) + cut == len(body)
    else:
        assert cut >= len(body) - len(shown) - body.count("\n")


def test_text_within_the_budget_is_not_cut() -> None:
    body = "a" * 2000 + "\n" + "b" * 2000
    text, blocks = email_reply(stored(new_text=body), case(), tz=TZ, opening=True)
    assert shown_text(blocks).replace("\n", "") == body.replace("\n", "")
    assert not any(t.startswith("Text cut here") for t in context_texts(blocks))
    assert_valid_message(text, blocks)


def total_text_length(text: str, blocks: list[dict[str, object]]) -> int:
    return sum(len(str(o["text"])) for o in text_objects(blocks))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(LONG_TEXTS["50k words"], id="50k words"),
        pytest.param(
            LONG_TEXTS["20k <"],
            id="20k <",
        ),
        pytest.param(
            LONG_TEXTS["20k &"],
            id="20k &",
        ),
    ],
)
def test_a_reply_stays_under_slacks_cumulative_text_cap(body: str) -> None:
    text, blocks = email_reply(stored(new_text=body), case(), tz=TZ, opening=True)
    assert total_text_length(text, blocks) <= 13_000


def test_huge_headers_and_lists_stay_within_slacks_limits() -> None:
    email = stored(
        from_name="N" * 60_000,
        from_addr="a" * 60_000 + "@example.org",
        subject="S" * 60_000,
        new_text="x" * 60_000,
        quoted_text="> q\n" * 20_000,
        signature="s\n" * 5000,
        reasons=tuple("r" * 500 for _ in range(200)),
        problems=tuple("p" * 500 for _ in range(200)),
        labels=("access", "erasure", "objection", "restriction", "portability", "rectification", "complaint"),
        attachments=tuple(
            {"filename": "f" * 5000, "content_type": "application/" + "x" * 5000, "size": 10**12}
            for _ in range(500)
        ),
    )
    for opening in (True, False):
        text, blocks = email_reply(email, case(requester_email="other@example.org"), tz=TZ, opening=opening)
        assert_valid_message(text, blocks)
    automated = dataclasses.replace(email, automated=True, kind="bounce")
    assert_valid_message(*email_reply(automated, case(), tz=TZ, opening=False))


def test_a_long_hostile_attachment_name_is_not_cut_inside_an_entity() -> None:
    attachments = (
        {"filename": "a" * 148 + "<script>", "content_type": "application/" + "&" * 100, "size": 10},
    )
    text, blocks = email_reply(stored(attachments=attachments), case(), tz=TZ, opening=True)
    assert_nothing_injected(text, blocks)


def test_a_huge_hostile_sender_is_not_cut_inside_an_entity() -> None:
    text, blocks = email_reply(stored(from_name="<" * 5000), case(), tz=TZ, opening=True)
    assert_valid_message(text, blocks)
    assert_nothing_injected(text, blocks)


def test_invisible_direction_and_zero_width_characters_are_shown_as_such() -> None:
    from handlers.slack.blocks import escape_mrkdwn

    assert escape_mrkdwn("invoice\u202efdp.exe") == "invoice[U+202E]fdp.exe"
    assert escape_mrkdwn("pay\u200bpal <x>") == "pay[U+200B]pal &lt;x&gt;"
    assert escape_mrkdwn("\u2066Ana\u2069 \ufeff") == "[U+2066]Ana[U+2069] [U+FEFF]"
    assert escape_mrkdwn("Chloé Dubois-Łukasiewicz") == "Chloé Dubois-Łukasiewicz"
