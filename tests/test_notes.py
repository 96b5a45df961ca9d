"""Thread notes rendered from audit events (handlers/slack/notes.py): the words of each event,
text typed by people escaped, and the same event rendered without its free text once erased."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.slack.notes import NoteContext, note_message
from storage.models import AuditEvent, OutboundEmail
from tests.support.factory import case_record

TZ = ZoneInfo("Europe/Brussels")
AT = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
CASE = case_record(ref="PRIV-2026-0001", requester_name="Ana Lopez")


def event(action: str, after: dict[str, object], *, before: dict[str, object] | None = None) -> AuditEvent:
    return AuditEvent(id=1, case_id=1, at=AT, actor="UALICE01", action=action, before=before, after=after)


@pytest.mark.parametrize(
    ("action", "after", "text", "expected"),
    [
        ("case.claimed", {"assignee": "UALICE01"}, "", "<@UALICE01> claimed the case."),
        ("case.claimed", {"assignee": "UBOB0001"}, "", "<@UALICE01> assigned the case to <@UBOB0001>."),
        (
            "case.identity_recorded",
            {"identity_status": "verified", "identity_method": "id_document"},
            "passport seen",
            "<@UALICE01> verified the requester's identity: ID document checked. passport seen.",
        ),
        (
            "case.waiting",
            {"waiting_for": "identity", "clock_paused": False},
            "",
            "<@UALICE01> is waiting for the requester since 25 November 2026: identity documents "
            "(the legal clock keeps running).",
        ),
        (
            "case.wait_ended",
            {"by_requester": True, "waited_days": 3, "clock_paused": False},
            "",
            "The requester answered on 25 November 2026: no longer waiting (3 days waited).",
        ),
        (
            "case.resolved",
            {"outcome": "refused_identity", "resolved_on_time": True, "due_date": "2026-12-28"},
            "no <@U0EVIL> answer",
            "<@UALICE01> resolved the case: Refused: identity not confirmed, on time (due 28 December 2026). "
            "no &lt;@U0EVIL&gt; answer. The requester must be told the reasons and that they may complain to "
            "the data protection authority and seek a judicial remedy (art. 12(4)).",
        ),
        ("case.reopened", {}, "more accounts", "<@UALICE01> reopened the case: more accounts"),
        (
            "case.checklist",
            {"changes": [["ticked", "Website database"], ["unticked", "Newsletter"]], "done": 1, "total": 7},
            "",
            "<@UALICE01> ticked Website database, unticked Newsletter (1/7 done).",
        ),
    ],
)
def test_the_words_of_each_event(action: str, after: dict[str, object], text: str, expected: str) -> None:
    words, blocks = note_message(event(action, after), NoteContext(case=CASE, tz=TZ, text=text))
    assert words == expected
    assert blocks[0]["text"]["text"] == expected  # type: ignore[index]


def test_an_extension_note_carries_the_notice_and_its_button() -> None:
    after = {"due_date": "2027-02-25", "notify_by": "2026-12-28", "status": "extended"}
    words, blocks = note_message(
        event("case.extended", after),
        NoteContext(case=CASE, tz=TZ, text="archives", notice="Dear Ana Lopez,\n\nWe need more time."),
    )
    assert words.startswith("<@UALICE01> extended the deadline to 25 February 2027: archives")
    assert "must be told by 28 December 2026" in words and "Dear Ana Lopez" not in words  # text is mrkdwn
    assert blocks[1]["text"] == {  # the notice as the requester will read it, never as mrkdwn
        "type": "plain_text",
        "text": "Dear Ana Lopez,\n\nWe need more time.",
        "emoji": False,
    }
    assert blocks[-1]["elements"][0]["action_id"] == "case.reply_notice"  # type: ignore[index]


def test_a_note_renders_without_its_free_text_once_it_is_erased() -> None:
    after = {"identity_status": "verified", "identity_method": "known_contact"}
    erased = case_record(ref="PRIV-2026-0001", requester_name="")
    words, _ = note_message(event("case.identity_recorded", after), NoteContext(case=erased, tz=TZ, text=""))
    assert words == "<@UALICE01> verified the requester's identity: known contact."


def test_a_reply_note_says_sent_only_once_the_server_accepted_it() -> None:
    outbound = OutboundEmail(
        id=1, case_id=1, message_id="<m@imal.example>", purpose="reply", language="en", in_reply_to="",
        references=(), author="UALICE01", created_at=AT, to_addr="ana@example.org", subject="Re", body="Hello *Ana*",
    )  # fmt: skip
    replied = event("case.replied", {"characters": 11})
    for state, says in (
        ({}, "Waiting to be sent"),
        ({"sent_at": AT}, "Sent: the mail server accepted it"),
        ({"failed_at": AT, "last_error": "SMTP 550"}, "Not delivered (SMTP 550)"),
    ):
        import dataclasses

        context = NoteContext(case=CASE, tz=TZ, outbound=dataclasses.replace(outbound, **state))  # type: ignore[arg-type]
        words, blocks = note_message(replied, context)
        assert words == "<@UALICE01> replied to the requester by email:"  # the body is not mrkdwn
        assert says in blocks[-1]["elements"][0]["text"]  # type: ignore[index]
        assert blocks[1]["text"] == {"type": "plain_text", "text": "Hello *Ana*", "emoji": False}
