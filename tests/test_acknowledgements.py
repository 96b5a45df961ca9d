"""Acknowledgements to requesters, templates and loop-safe mail, with a real SMTP server (aiosmtpd),
the Slack stand-in and a real SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from bot.settings import Settings
from core.errors import ConfigError, Refused
from handlers.mail_out.compose import build_message, check_headers
from handlers.mail_out.letters import letter_languages
from handlers.mail_out.outgoing import reply_subject
from handlers.mail_out.templates import BUNDLED_DIR, LANGUAGES, TEMPLATE_NAMES, Templates
from storage.models import OutboundEmail
from storage.store import Store
from tests.conftest import OUTSIDER, wait_until
from tests.support.slack_standin import SlackStandIn
from tests.support.smtp_sink import Sink
from tests.test_case_handling import ALICE, AUTHSERV, Harness
from tests.test_replies import MAIL_FROM, _desk


def mail(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, MAIL_FROM, subject
    m["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m


REQUESTS = {
    "fr": mail(
        "Chloé Dubois <chloe.dubois@example.org>",
        "Suppression",
        "Bonjour, je voudrais que vous supprimiez toutes mes données personnelles. Merci, Chloé Dubois",
    ),
    "nl": mail(
        "Pieter Jacobs <pieter.jacobs@example.be>",
        "Inzage",
        "Beste, graag ontvang ik een kopie van alle persoonsgegevens die jullie over mij bewaren. Pieter",
    ),
    "de": mail(
        "Jonas Weber <jonas.weber@example.net>",
        "Auskunft",
        "Guten Tag, bitte teilen Sie mir mit, welche personenbezogenen Daten Sie über mich speichern. Jonas Weber",
    ),
    "en": mail(
        "Grace Adeyemi <grace.adeyemi@example.com>",
        "My data",
        "Hi, please correct my surname in your records: it is Adeyemi, not Adeyemy. Thanks, Grace",
    ),
}
#: Words each acknowledgement must carry: the right in plain words, and the due date as the language writes it.
EXPECTED = {
    "fr": ("l'effacement de vos données personnelles", "janvier 2027", "identité"),
    "nl": ("een kopie van de persoonsgegevens", "januari 2027", "identiteit"),
    "de": ("eine Kopie der personenbezogenen Daten", "Januar 2027", "Identität"),
    "en": ("the correction of your personal data", "January 2027", "identity"),
}


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
    async with _desk(settings, slack, store, sink) as harness:
        harness.acknowledging = True
        yield harness


async def _acks(sink: Sink, n: int) -> list[email.message.EmailMessage]:
    await wait_until(lambda: len(sink.messages) >= n, 10)
    await asyncio.sleep(0.2)
    return sink.messages


@pytest.mark.parametrize("language", list(REQUESTS))
async def test_the_acknowledgement_in_each_language(desk: Harness, sink: Sink, language: str) -> None:
    request = REQUESTS[language]
    ref = await desk.deliver(request.as_bytes())
    assert ref is not None
    [ack] = await _acks(sink, 1)
    case = await desk.case(ref)
    assert ack["To"].addresses[0].addr_spec == case.requester_email
    assert ack["From"] == MAIL_FROM
    assert ref in ack["Subject"] and ack["Subject"].startswith(f"Re: [{ref}] ")
    assert ack["In-Reply-To"] == request["Message-ID"]
    assert request["Message-ID"] in ack["References"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Content-Language"] == language
    assert ack["Message-ID"].endswith("@imal.example>")
    text = " ".join(ack.get_content().split())  # the words, whatever the line breaks
    assert ref in text
    for words in EXPECTED[language]:
        assert words in text, (language, words)
    assert sink.recipients == [[case.requester_email]]
    # staff see it in the thread, and that the mail server took it
    await wait_until(lambda: any("Acknowledgement to the requester" in n for n in desk.notes(ref)), 5)
    note = next(m for m in desk.thread(ref) if "Acknowledgement to the requester" in m["text"])
    await wait_until(lambda: "Sent" in str(desk.thread(ref)), 5)
    assert "Sent: the mail server accepted it" in str(
        next(m for m in desk.thread(ref) if m["ts"] == note["ts"])["blocks"]
    )
    [outbound] = await desk.store.mail.outbound_of_case(case.id)
    assert outbound.purpose == "acknowledgement" and outbound.sent_at is not None


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("mailing list", mail("Art list <art-list@lists.example.net>", "Delete my data please",
                              "Please remove my data from your files.", List_Id="<art-list.lists.example.net>")),
        ("bulk", mail("News <news@shop.example.com>", "Please delete my data",
                      "Please delete all data about me.", Precedence="bulk")),
        ("no-reply", mail("Shop <no-reply@shop.example.com>", "Please delete my account data",
                          "Please delete all data about this account.")),
        ("forged", mail("Ana Lopez <ana.lopez@example.org>", "Delete my data", "Please delete all my data.",
                        Authentication_Results=f"{AUTHSERV}; dmarc=fail header.from=example.org; spf=fail")),
    ],
)  # fmt: skip
async def test_no_acknowledgement_to_lists_machines_or_forged_senders(
    desk: Harness, sink: Sink, what: str, message: EmailMessage
) -> None:
    ref = await desk.deliver(message.as_bytes())
    assert ref is not None, f"{what}: the case still opens"
    await wait_until(lambda: any("No acknowledgement sent" in n for n in desk.notes(ref)), 5)
    await asyncio.sleep(0.2)
    assert sink.messages == []
    assert await desk.store.mail.outbound_of_case((await desk.case(ref)).id) == []


async def test_auto_replies_bounces_and_our_own_mail_open_no_case(desk: Harness, sink: Sink) -> None:
    ooo = mail("Tom Peeters <tom.peeters@example.be>", "Out of office", "I am away until Monday.",
               Auto_Submitted="auto-replied")  # fmt: skip
    own = mail(
        f"iMAL Privacy <{MAIL_FROM}>", "Erasure request (forwarded)", "Please delete all my personal data."
    )
    for message in (ooo, own):
        assert await desk.deliver(message.as_bytes()) is None
    await asyncio.sleep(0.3)
    assert sink.messages == [] and desk.slack.roots(desk.settings.slack.channel_id) == []


async def test_a_colleagues_forward_opens_the_forwarded_persons_case_without_acknowledgement(
    desk: Harness, sink: Sink
) -> None:
    forward = mail(
        "Jan Claes <jan.claes@imal.example>",
        "Fwd: delete my data",
        "For the privacy team.\n\n---------- Forwarded message ---------\n"
        "From: Ana Lopez <ana.lopez@example.org>\nDate: Mon, 30 Nov 2026 10:00\nSubject: delete my data\n"
        "To: <info@imal.example>\n\nPlease delete all my personal data from your systems. Ana\n",
    )
    ref = await desk.deliver(forward.as_bytes())
    assert ref is not None
    case = await desk.case(ref)
    assert (case.requester_email, case.requester_name) == ("ana.lopez@example.org", "Ana Lopez")
    await wait_until(lambda: any("our own domain" in n for n in desk.notes(ref)), 5)
    assert sink.messages == []


async def test_at_most_one_acknowledgement_per_sender_a_day(desk: Harness, sink: Sink) -> None:
    first = await desk.deliver(REQUESTS["fr"].as_bytes())
    await _acks(sink, 1)
    again = mail("Chloé Dubois <chloe.dubois@example.org>", "Autre demande",
                 "Bonjour, je souhaite aussi recevoir une copie de mes données. Chloé")  # fmt: skip
    second = await desk.deliver(again.as_bytes())
    assert second is not None and second != first
    await wait_until(lambda: any("in the last 24 hours" in n for n in desk.notes(second)), 5)
    assert len(sink.messages) == 1
    desk.clock.now += timedelta(hours=25)
    later = mail(
        "Chloé Dubois <CHLOE.DUBOIS@example.org>", "Encore", "Je voudrais rectifier mon adresse. Chloé"
    )
    assert await desk.deliver(later.as_bytes()) is not None
    await _acks(sink, 2)
    assert len(sink.messages) == 2


async def test_an_out_of_office_answering_our_acknowledgement_sends_nothing_and_opens_nothing(
    desk: Harness, sink: Sink
) -> None:
    ref = await desk.deliver(REQUESTS["nl"].as_bytes())
    assert ref is not None
    [ack] = await _acks(sink, 1)
    roots = len(desk.slack.roots(desk.settings.slack.channel_id))
    ooo = mail("Pieter Jacobs <pieter.jacobs@example.be>", f"Automatisch antwoord: {ack['Subject']}",
               "Ik ben afwezig tot maandag.", Auto_Submitted="auto-replied", In_Reply_To=ack["Message-ID"],
               References=ack["Message-ID"])  # fmt: skip
    await desk.deliver(ooo.as_bytes())
    # the requester's own answer to the acknowledgement lands in the case's thread
    answer = mail("Pieter Jacobs <pieter.jacobs@example.be>", f"Re: {ack['Subject']}",
                  "Dank u. Het gaat vooral om mijn Eventbrite-gegevens.", In_Reply_To=ack["Message-ID"],
                  References=f"{REQUESTS['nl']['Message-ID']} {ack['Message-ID']}")  # fmt: skip
    assert await desk.deliver(answer.as_bytes()) == ref
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 1
    assert len(desk.slack.roots(desk.settings.slack.channel_id)) == roots
    assert any("Eventbrite" in str(m.get("blocks")) for m in desk.thread(ref))


async def test_a_case_for_review_gets_an_acknowledgement_that_names_no_right_in_french_and_dutch(
    desk: Harness, sink: Sink, store: Store
) -> None:
    vague = mail("Ana Lopez <ana.lopez@example.org>", "question", "GDPR")
    ref = await desk.deliver(vague.as_bytes())
    assert ref is not None
    case = await desk.case(ref)
    assert case.needs_review and case.language == "und"
    [ack] = await _acks(sink, 1)
    assert ack["Content-Language"] == "fr, nl"
    text = ack.get_content()
    assert ref in text and "(droit" not in text and "(recht" not in text
    assert "Bonjour Ana Lopez," in text and "Beste Ana Lopez," in text
    assert "Notre référence" in text and "Onze referentie" in text
    [outbound] = await store.mail.outbound_of_case(case.id)
    assert outbound.purpose == "acknowledgement_review"
    await wait_until(lambda: any("does not name the right" in n for n in desk.notes(ref)), 5)


async def test_a_message_that_is_not_a_request_gets_no_acknowledgement(desk: Harness, sink: Sink) -> None:
    question = "Hello, do you still have tickets for the concert on Friday evening? How much are they? Ana"
    thanks = mail("Ana Lopez <ana.lopez@example.org>", "Concert tickets", question)
    ref = await desk.deliver(thanks.as_bytes())
    assert ref is not None
    case = await desk.case(ref)
    if case.kind != "other" or case.needs_review:
        pytest.fail(f"expected a plain other, got {case.kind} review={case.needs_review}")
    await asyncio.sleep(0.3)
    assert sink.messages == []
    assert not any("acknowledgement" in n.lower() for n in desk.notes(ref))


async def test_an_smtp_outage_delays_the_acknowledgement_and_a_refusal_shows_in_the_thread(
    desk: Harness, sink: Sink
) -> None:
    sink.controller.stop()
    ref = await desk.deliver(REQUESTS["de"].as_bytes())
    assert ref is not None
    await wait_until(lambda: desk.outbox.outage("smtp").failures >= 2, 10)
    assert any("Waiting to be sent" in str(m["blocks"]) for m in desk.thread(ref))
    sink.restart()
    await _acks(sink, 1)
    assert len(sink.messages) == 1

    sink.refuse.add("grace.adeyemi@example.com")
    other = await desk.deliver(REQUESTS["en"].as_bytes())
    assert other is not None
    await wait_until(
        lambda: any(
            "acknowledgement to the requester could not be delivered" in n for n in desk.notes(other)
        ),
        10,
    )
    assert len(sink.messages) == 1


async def test_the_reply_modal_offers_templates_in_the_requesters_language(desk: Harness, sink: Sink) -> None:
    ref = await desk.deliver(REQUESTS["fr"].as_bytes())
    assert ref is not None
    await _acks(sink, 1)
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    menu = next(b for b in view["blocks"] if b.get("block_id") == "template")["elements"][0]
    assert [o["value"] for o in menu["options"]] == [
        "identity_request", "clarification_request", "extension_notice", "answer", "refusal",
    ]  # fmt: skip
    # an outsider's pick changes nothing
    await desk.send(
        desk.slack.view_block_actions_payload(
            view, "case.reply_template", user=OUTSIDER, selected=menu["options"][0]
        )
    )
    await asyncio.sleep(0.2)
    assert desk.slack.views[view["id"]]["hash"] == view["hash"]
    await desk.send(
        desk.slack.view_block_actions_payload(
            view, "case.reply_template", user=ALICE, selected=menu["options"][0]
        )
    )
    await wait_until(lambda: desk.slack.views[view["id"]]["hash"] != view["hash"], 5)
    filled = desk.slack.views[view["id"]]
    body = next(b for b in filled["blocks"] if b.get("block_id", "").startswith("body"))
    assert body["block_id"] == "body~identity_request"
    prefilled = body["element"]["initial_value"]
    assert prefilled.startswith("Bonjour Chloé Dubois,") and "adresse e-mail" in prefilled
    wait = next(b for b in filled["blocks"] if b.get("block_id") == "wait_for")
    assert wait["element"]["initial_option"]["value"] == "identity"
    answer = await desk.submit(filled, user=ALICE, values={"body": prefilled})
    assert answer == {}
    await _acks(sink, 2)
    case = await desk.case(ref)
    assert case.status == "awaiting_requester" and case.waiting_for == "identity"
    sent = sink.messages[1]
    assert sent["Content-Language"] == "fr" and sent["Auto-Submitted"] is None
    assert "adresse e-mail" in sent.get_content()
    outbound = (await desk.store.mail.outbound_of_case(case.id))[-1]
    assert outbound.purpose == "identity_request"


# --- templates -----------------------------------------------------------------------------------


def test_every_template_exists_in_every_language_and_is_valid() -> None:
    templates = Templates.load()
    for name in TEMPLATE_NAMES:
        for language in LANGUAGES:
            assert templates.path(name, language) == BUNDLED_DIR / f"{name}.{language}.txt"


def test_a_template_override_replaces_the_bundled_file(slack_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "acknowledgement.en.txt").write_text("$greeting\n\nGot it: $case_ref, by $due_date.\n")
    (tmp_path / "README.md").write_text("not a template")
    settings = Settings.from_env({**slack_env, "TEMPLATES_DIR": str(tmp_path)})
    assert settings.templates.path("acknowledgement", "en") == tmp_path / "acknowledgement.en.txt"
    assert settings.templates.path("acknowledgement", "fr") == BUNDLED_DIR / "acknowledgement.fr.txt"
    text = settings.templates.render("acknowledgement", "en", {"greeting": "Dear Ana,", "case_ref": "PRIV-2026-0001",
                                                                "due_date": "4 January 2027"})  # fmt: skip
    assert text == "Dear Ana,\n\nGot it: PRIV-2026-0001, by 4 January 2027.\n"


@pytest.mark.parametrize(
    ("file", "content", "problem"),
    [
        ("answer.nl.txt", "$greeting\n\nBeste,\nuw $wachtwoord\n", "answer.nl.txt:4: unknown variable $wachtwoord"),
        ("acknowledgement_review.en.txt", "$greeting\n${request}\n", "review.en.txt:2: unknown variable"),
        ("refusal.de.txt", "Kosten: 5 $ pro Seite\n", "refusal.de.txt:1: a $ that starts no variable"),
        ("acknowledgment.en.txt", "$greeting\n", "not a known template"),
        ("answer.es.txt", "$greeting\n", "not a known template"),
    ],
)  # fmt: skip
def test_a_broken_template_is_refused_at_start_with_file_and_line(
    slack_env: dict[str, str], tmp_path: Path, file: str, content: str, problem: str
) -> None:
    (tmp_path / file).write_text(content)
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**slack_env, "TEMPLATES_DIR": str(tmp_path)})
    assert refused.value.setting == "TEMPLATES_DIR"
    assert problem in str(refused.value)


def test_the_bilingual_fallback_for_belgium() -> None:
    assert letter_languages("und", country="BE") == ("fr", "nl")
    assert letter_languages("und", country="NL") == ("en",)
    assert letter_languages("de", country="BE") == ("de",)


# --- safe headers ----------------------------------------------------------------------------------


def _outbound(**fields: object) -> OutboundEmail:
    from datetime import UTC, datetime

    values: dict[str, object] = {
        "id": 1, "case_id": 1, "message_id": "<a1@imal.example>", "purpose": "reply", "language": "en",
        "in_reply_to": "<r1@example.org>", "references": ("<r1@example.org>",), "author": ALICE,
        "created_at": datetime(2026, 12, 1, 10, tzinfo=UTC), "to_addr": "ana@example.org",
        "subject": "Re: [PRIV-2026-0001] My data", "body": "Hello",
    }  # fmt: skip
    values.update(fields)
    return OutboundEmail(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Re: x\r\nBcc: victim@example.net"},
        {"in_reply_to": "<r1@example.org>\nBcc: victim@example.net"},
        {"references": ("<r1@example.org>", "<x>\r\nX-Evil: 1")},
        {"message_id": "<a1@imal.example>\x00"},
        {"to_addr": "ana@example.org\r\nBcc: victim@example.net"},
    ],
)
def test_cr_lf_or_nul_in_a_header_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(Refused):
        build_message(_outbound(**fields), mail_from=MAIL_FROM, case_ref="PRIV-2026-0001")


def test_a_header_check_names_the_header() -> None:
    with pytest.raises(Refused, match="subject"):
        check_headers(subject="a\nb")
    check_headers(subject="fine", references=["<a@b>"])


def test_a_subject_from_the_requester_cannot_carry_a_line_break() -> None:
    subject = reply_subject(ref="PRIV-2026-0001", subject="data\r\nBcc: victim@example.net", language="en")
    assert "\n" not in subject and "\r" not in subject
    assert subject == "Re: [PRIV-2026-0001] data Bcc: victim@example.net"


def test_long_subjects_are_folded_and_non_ascii_names_encoded() -> None:
    subject = reply_subject(ref="PRIV-2026-0001", subject="Demande d'accès " * 20, language="fr")
    message = build_message(
        _outbound(subject=subject, language="fr, nl"),
        mail_from=MAIL_FROM,
        case_ref="PRIV-2026-0001",
        to_name="Chloé Dubois-Łukasiewicz",
    )
    raw = message.as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    assert all(len(line) <= 78 for line in head.splitlines()), "every header line folded"
    assert raw.isascii() or b"utf-8" in raw.lower()
    assert b"=?utf-8?" in head.lower()  # the name, encoded
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == "Chloé Dubois-Łukasiewicz"
    assert parsed["Content-Language"] == "fr, nl"
    body = parsed.get_content()
    assert "Notre référence : PRIV-2026-0001" in body and "Onze referentie: PRIV-2026-0001" in body


def test_a_name_that_cannot_be_written_plainly_is_left_out() -> None:
    message = build_message(
        _outbound(), mail_from=MAIL_FROM, case_ref="PRIV-2026-0001", to_name='Eve <evil@x.example>, "a'
    )
    assert message["To"].addresses[0].display_name == ""
    assert [a.addr_spec for a in message["To"].addresses] == ["ana@example.org"]


def test_an_acknowledgement_is_marked_automatic_and_a_reply_is_not() -> None:
    ack = build_message(_outbound(purpose="acknowledgement"), mail_from=MAIL_FROM, case_ref="PRIV-2026-0001")
    reply = build_message(_outbound(), mail_from=MAIL_FROM, case_ref="PRIV-2026-0001")
    assert ack["Auto-Submitted"] == "auto-replied" and reply["Auto-Submitted"] is None


async def test_acknowledge_off_sends_none(
    settings: Settings, slack: SlackStandIn, store: Store, sink: Sink
) -> None:
    async with _desk(dataclasses.replace(settings, acknowledge=False), slack, store, sink) as harness:
        harness.acknowledging = True
        ref = await harness.deliver(REQUESTS["en"].as_bytes())
        assert ref is not None
        await asyncio.sleep(0.3)
        assert sink.messages == []


def test_dates_as_each_language_writes_them() -> None:
    from datetime import date

    from handlers.mail_out.letters import local_date

    assert local_date(date(2026, 12, 1), "fr") == "1er décembre 2026"
    assert local_date(date(2027, 1, 4), "fr") == "4 janvier 2027"
    assert local_date(date(2027, 1, 4), "de") == "4. Januar 2027"
    assert local_date(date(2027, 1, 4), "nl") == "4 januari 2027"
    assert local_date(date(2027, 1, 4), "en") == "4 January 2027"


def test_a_paragraph_a_variable_made_long_is_wrapped_again_and_lists_are_kept(tmp_path: Path) -> None:
    (tmp_path / "answer.en.txt").write_text(
        "$greeting\n\nWe did what you asked: $request.\n\n"
        "- a list item that stays as it is written, however long it is\n"
    )
    templates = Templates.load(tmp_path)
    text = templates.render("answer", "en", {"greeting": "Dear Ana,", "request": "the erasure " * 12})
    paragraphs = text.split("\n\n")
    assert all(len(line) <= 76 for line in paragraphs[1].splitlines()) and "\n" in paragraphs[1]
    assert paragraphs[2] == "- a list item that stays as it is written, however long it is\n"


async def test_a_bounce_of_our_acknowledgement_is_told_in_the_thread(desk: Harness, sink: Sink) -> None:
    ref = await desk.deliver(REQUESTS["en"].as_bytes())
    assert ref is not None
    [ack] = await _acks(sink, 1)
    await wait_until(lambda: "Sent" in str(desk.thread(ref)), 5)
    report = (
        "This is the mail system at host mx.example.com.\n\nI'm sorry to have to inform you that your "
        "message could not be delivered to one or more recipients.\n\n"
        "<grace.adeyemi@example.com>: host said: 550 5.1.1 User unknown"
    )
    bounce = mail(
        "Mail Delivery System <MAILER-DAEMON@mx.example.com>",
        f"Undelivered Mail Returned to Sender: {ack['Subject']}",
        report,
        In_Reply_To=ack["Message-ID"],
        References=ack["Message-ID"],
    )
    assert await desk.deliver(bounce.as_bytes()) == ref
    await wait_until(lambda: any("delivery failure report came back" in n for n in desk.notes(ref)), 5)
    note = next(n for n in desk.notes(ref) if "delivery failure report" in n)
    assert "our acknowledgement of" in note
    assert len(sink.messages) == 1  # nothing answers a bounce
