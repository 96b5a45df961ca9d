"""Taking messages in: new cases, follow-ups, machine traffic, duplicates, history, unreadable mail."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from handlers.cases.deadlines import Calendar
from handlers.cases.intake import IncomingMessage, take_in, take_in_all, take_in_unparsed
from storage.store import Store
from tests.conftest import FIXTURES

CALENDAR = Calendar()
ARRIVED = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / "emails" / name).read_bytes()


def message(
    raw: bytes, uid: int, *, historical: bool = False, arrived: datetime = ARRIVED
) -> IncomingMessage:
    return IncomingMessage(
        raw=raw, folder="INBOX", uidvalidity=7, uid=uid, arrived_at=arrived, historical=historical
    )


@pytest.fixture
async def inbox(store: Store) -> Store:
    """The store with a cursor for INBOX under uidvalidity 7."""
    async with store.transaction() as tx:
        await tx.cursors.reset("INBOX", uidvalidity=7, backfill_before_uid=1)
    return store


def email(subject: str, body: str, *, sender: str = "ana@example.org", **headers: str) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m.as_bytes()


async def test_a_request_opens_a_case_with_its_legal_deadline(inbox: Store) -> None:
    outcome = await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    assert outcome.action == "opened_case" and outcome.case_ref == "PRIV-2026-0001"
    case = await inbox.cases.by_ref("PRIV-2026-0001")
    assert case is not None
    assert case.kind == "access"
    assert case.status == "new"
    assert case.requester_email == "marie.dubois@example.org"
    assert case.requester_name == "Marie Dubois"
    assert case.received_at == ARRIVED  # INTERNALDATE, not the Date header of 24 Nov
    assert case.received_date.isoformat() == "2026-11-25"
    assert case.due_date.isoformat() == "2026-12-28"
    assert case.message_id == "<short-access-1@example.org>"
    trail = await inbox.audit.trail(case.id)
    assert [e.action for e in trail] == ["case.opened"]
    assert trail[0].actor == "system" and trail[0].after is not None
    assert trail[0].after["due_date"] == "2026-12-28"
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 1


async def test_case_references_count_per_receipt_year(inbox: Store) -> None:
    refs = []
    for uid, arrived in enumerate(
        [
            datetime(2026, 12, 31, 22, 30, tzinfo=UTC),  # 23:30 local, still 2026
            datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # 00:30 local on 1 Jan 2027
            datetime(2027, 1, 2, 9, 0, tzinfo=UTC),
        ],
        start=1,
    ):
        out = await take_in(
            inbox,
            message(email(f"delete me {uid}", "please delete my data"), uid, arrived=arrived),
            calendar=CALENDAR,
        )
        refs.append(out.case_ref)
    assert refs == ["PRIV-2026-0001", "PRIV-2027-0001", "PRIV-2027-0002"]


async def test_a_complaint_gets_the_complaint_response_time(inbox: Store) -> None:
    raw = email("Complaint", "I will complain to the data protection authority about your newsletter.")
    out = await take_in(inbox, message(raw, 1), calendar=CALENDAR)
    case = await inbox.cases.by_ref(out.case_ref or "")
    assert case is not None and case.kind == "complaint"
    assert case.due_date.isoformat() == "2026-12-25"  # 25 Nov + 30 calendar days, not moved


async def test_reply_goes_to_its_case_by_in_reply_to(inbox: Store) -> None:
    await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    out = await take_in(inbox, message(fixture("followup-reply.eml"), 2), calendar=CALENDAR)
    assert out.action == "follow_up" and out.case_ref == "PRIV-2026-0001"
    assert len(await inbox.cases.select()) == 1
    case = await inbox.cases.by_ref("PRIV-2026-0001")
    assert case is not None
    emails = await inbox.mail.of_case(case.id)
    assert [e.disposition for e in emails] == ["opened_case", "follow_up"]
    assert emails[1].new_text == "Any news about my request?"


async def test_reply_goes_to_its_case_by_references_only(inbox: Store) -> None:
    await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    raw = email("Re: Re: my data", "Here is my ID", references="<other@x> <short-access-1@example.org>")
    out = await take_in(inbox, message(raw, 2), calendar=CALENDAR)
    assert out.action == "follow_up" and out.case_ref == "PRIV-2026-0001"


async def test_subject_with_a_case_reference_goes_to_that_case(inbox: Store) -> None:
    await take_in(inbox, message(fixture("erasure-fr-qp.eml"), 1), calendar=CALENDAR)
    raw = email(
        "Re: [priv-2026-0001] votre demande", "Voici ma carte d'identité.", sender="jerome@example.net"
    )
    out = await take_in(inbox, message(raw, 2), calendar=CALENDAR)
    assert out.action == "follow_up" and out.case_ref == "PRIV-2026-0001"
    unknown = email("About PRIV-2026-0999", "Hello, please delete my data")
    out = await take_in(inbox, message(unknown, 3), calendar=CALENDAR)
    assert out.action == "opened_case" and out.case_ref == "PRIV-2026-0002"


@pytest.mark.parametrize("name", ["vacation-auto-reply.eml", "bounce-dsn.eml"])
async def test_machine_traffic_never_opens_a_case(inbox: Store, name: str) -> None:
    out = await take_in(inbox, message(fixture(name), 1), calendar=CALENDAR)
    assert out.action == "automated" and out.case_ref is None
    assert await inbox.cases.select() == []
    assert await inbox.mail.counts() == {"automated": 1}
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 1


async def test_an_auto_reply_to_our_thread_is_kept_on_the_case_but_opens_nothing(inbox: Store) -> None:
    await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    raw = email(
        "Out of office: my data",
        "I am away.",
        auto_submitted="auto-replied",
        in_reply_to="<short-access-1@example.org>",
    )
    out = await take_in(inbox, message(raw, 2), calendar=CALENDAR)
    assert out.action == "automated" and out.case_ref == "PRIV-2026-0001"
    assert len(await inbox.cases.select()) == 1


async def test_the_same_message_twice_is_taken_in_once(inbox: Store) -> None:
    raw = fixture("access-short-en.eml")
    first = await take_in(inbox, message(raw, 1), calendar=CALENDAR)
    again = await take_in(inbox, message(raw, 2), calendar=CALENDAR)
    assert (first.action, again.action) == ("opened_case", "duplicate")
    assert len(await inbox.cases.select()) == 1
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 2


async def test_historical_mail_is_recorded_without_a_case(inbox: Store) -> None:
    out = await take_in(inbox, message(fixture("access-short-en.eml"), 1, historical=True), calendar=CALENDAR)
    assert out.action == "historical"
    assert await inbox.cases.select() == []
    assert await inbox.mail.counts() == {"historical": 1}


async def test_unreadable_bytes_open_a_flagged_case(inbox: Store) -> None:
    out = await take_in(inbox, message(fixture("outlook-binary.msg"), 1), calendar=CALENDAR)
    case = await inbox.cases.by_ref(out.case_ref or "")
    assert case is not None and case.unreadable and case.needs_review
    assert case.reasons[0] == "could not be read"
    assert case.message_id.endswith("@synthetic.privacy-desk.invalid>")


async def test_fallback_stores_a_message_whose_intake_failed(inbox: Store) -> None:
    raw = fixture("erasure-fr-qp.eml")
    out = await take_in_unparsed(inbox, message(raw, 1), RuntimeError("boom"), calendar=CALENDAR)
    assert out.action == "opened_case"
    case = await inbox.cases.by_ref(out.case_ref or "")
    assert case is not None and case.unreadable
    emails = await inbox.mail.of_case(case.id)
    assert emails[0].problems == ("intake failed: RuntimeError",)
    again = await take_in_unparsed(inbox, message(raw, 2), RuntimeError("boom"), calendar=CALENDAR)
    assert again.action == "duplicate"


async def test_a_failed_transaction_leaves_the_cursor_where_it_was(inbox: Store) -> None:
    await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    with pytest.raises(ValueError):
        # a naive INTERNALDATE cannot be stored: the whole intake rolls back
        await take_in(
            inbox,
            message(fixture("erasure-fr-qp.eml"), 2, arrived=datetime(2026, 11, 25, 10, 0)),
            calendar=CALENDAR,
        )
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 1
    assert len(await inbox.cases.select()) == 1


@pytest.mark.shared
async def test_every_wild_email_yields_a_case_or_a_recorded_machine_message(inbox: Store) -> None:
    from tests.conftest import shared_path

    wild = shared_path("corpus", "wild")
    skip = {"SOURCES.md", "README.txt", "COPYING", "ARTISTIC-LICENSE.txt", ".gitattributes"}
    files = sorted(
        p for p in wild.rglob("*") if p.is_file() and p.name not in skip and not p.name.startswith("LICENSE")
    )
    assert len(files) == 768
    actions: dict[str, int] = {}
    for uid, path in enumerate(files, start=1):
        outcome = await take_in(inbox, message(path.read_bytes(), uid), calendar=CALENDAR)
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
        assert outcome.action in ("opened_case", "automated", "follow_up", "duplicate"), path
        if outcome.action != "automated":
            assert outcome.case_ref is not None or outcome.action == "duplicate", path
    stored = await inbox.mail.counts()
    assert sum(stored.values()) + actions.get("duplicate", 0) == 768  # every message stored once
    assert actions["opened_case"] == len(await inbox.cases.select())
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 768


async def test_the_stored_raw_message_keeps_no_attachment_content(inbox: Store) -> None:
    m = EmailMessage()
    m["From"] = "Ana Lopez <ana@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = "My data"
    m["Message-ID"] = "<with-passport@example.org>"
    m.set_content("Please send me my data. My passport is attached.")
    m.add_attachment(b"PASSPORT-SCAN-" * 2000, maintype="image", subtype="jpeg", filename="passport.jpg")
    out = await take_in(inbox, message(m.as_bytes(), 1), calendar=CALENDAR)
    case = await inbox.cases.by_ref(out.case_ref or "")
    assert case is not None
    [stored] = await inbox.mail.of_case(case.id)
    assert [a["filename"] for a in stored.attachments] == ["passport.jpg"]  # listed, as the thread says
    raw = await inbox.mail.raw(stored.id)
    assert raw is not None and b"My passport is attached" in raw
    assert b"PASSPORT-SCAN" not in raw and b"UEFTU1BPUlQ" not in raw  # nor its base64
    assert b"content not stored" in raw
    assert b"PASSPORT-SCAN" not in inbox.path.read_bytes()
    from handlers.mail_in.parsing import strip_attachments

    assert strip_attachments(raw) == raw  # nothing more to remove the second time
    fallback = await take_in_unparsed(
        inbox, message(m.as_bytes(), 2), RuntimeError("boom"), calendar=CALENDAR
    )
    assert fallback.action == "duplicate" or fallback.case_ref  # stored once; the fallback strips too
    again = EmailMessage()
    again["From"] = "Ana Lopez <ana@example.org>"
    again["Subject"] = "Scan"
    again.set_content("see attached")
    again.add_attachment(b"SECOND-SCAN-" * 500, maintype="image", subtype="png", filename="scan.png")
    out = await take_in_unparsed(inbox, message(again.as_bytes(), 3), RuntimeError("boom"), calendar=CALENDAR)
    case = await inbox.cases.by_ref(out.case_ref or "")
    assert case is not None
    [kept] = await inbox.mail.of_case(case.id)
    assert b"SECOND-SCAN" not in (await inbox.mail.raw(kept.id) or b"")


async def test_a_refused_transition_during_intake_is_taken_in_and_flagged(inbox: Store) -> None:
    """An answer that meets a state where the wait cannot end (here: a case marked waiting with no
    start, as a damaged database might hold) is stored on its case and flagged for staff, and
    intake goes on; a business refusal is never taken for a database outage."""
    from core.errors import StorageError, TransitionError

    assert not issubclass(TransitionError, StorageError)
    first = await take_in(inbox, message(fixture("access-short-en.eml"), 1), calendar=CALENDAR)
    case = await inbox.cases.by_ref(first.case_ref or "")
    assert case is not None
    async with inbox.transaction() as tx:
        await tx.cases.update(case, {"status": "awaiting_requester"})
    answer = email(
        "Re: my data", "Here is my ID.", sender="marie.dubois@example.org", in_reply_to=case.message_id
    )
    out = await take_in(inbox, message(answer, 2), calendar=CALENDAR)
    assert (out.action, out.case_ref) == ("follow_up", case.ref)
    trail = await inbox.audit.trail(case.id)
    assert trail[-1].action == "email.wait_not_ended" and trail[-1].after is not None
    assert trail[-1].after["reason"] == "refused"
    assert any(r.kind == "note" and r.event_id == trail[-1].id for r in await inbox.outbox.of_case(case.id))
    nxt = await take_in(inbox, message(fixture("erasure-fr-qp.eml"), 3), calendar=CALENDAR)
    assert nxt.action == "opened_case"
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 3


async def test_a_batch_and_its_cursor_are_committed_without_a_sync_of_their_own(inbox: Store) -> None:
    # a power loss taking the batch back takes the cursor back too: the mail is fetched again;
    # the outbox's synced "started" mark makes it durable before anything is sent about it
    statements: list[str] = []
    level = {1: "NORMAL", 2: "FULL"}[await inbox._db.synchronous]
    await inbox._db._writer.set_trace_callback(statements.append)
    batch = [message(fixture("access-short-en.eml"), 1), message(fixture("erasure-fr-qp.eml"), 2)]
    await take_in_all(inbox, batch, calendar=CALENDAR, now=ARRIVED)
    await inbox._db._writer.set_trace_callback(None)
    for sql in statements:
        if sql.startswith("PRAGMA synchronous"):
            level = sql.rsplit("=", 1)[1].strip()
    assert statements.count("COMMIT") == 1 and level == "NORMAL"
    cursor = await inbox.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 2


async def test_in_a_batch_a_message_id_already_stored_or_seen_earlier_in_it_is_a_duplicate(
    inbox: Store,
) -> None:
    """A batch looks its Message-IDs up at once: one stored before the batch, and one that comes
    twice within it, are each taken in once."""
    first = email("My data", "Please send me a copy of my data.", Message_ID="<one@example.org>")
    second = email("Delete me", "Please delete my data.", Message_ID="<two@example.org>")
    await take_in(inbox, message(first, 1), calendar=CALENDAR)
    outcomes = await take_in_all(
        inbox, [message(first, 2), message(second, 3), message(second, 4)], calendar=CALENDAR
    )
    assert [o.action for o in outcomes] == ["duplicate", "opened_case", "duplicate"]
    assert len(await inbox.cases.select()) == 2
