"""Hostile mail pushed through the real intake, the outbox and the Slack stand-in (and, for what we
send, a real SMTP server): every case neutralised, and shown as such.

What reaches Slack is read the way Slack reads it: `plain_text` objects literally (after the three
entities), `mrkdwn` objects and every message's `text` through the demo's mrkdwn reader
(handlers/demo/mrkdwn.py: formatting at word boundaries, `<…>` links, mentions and broadcasts,
code and preformatted blocks). A sender's `<!channel>`, `<@U…>`, `<!subteam^…>`, disguised links,
`*bold*`, `_italic_`, `~strike~` and backticks must never become a mention, a link or formatting,
and must still be visible as the characters they are — on the root, in the thread, in the modals
staff open, in `/privacy` answers and the App Home, and in the notification `text`.

Already covered elsewhere and not repeated here: our own mail coming back and a colleague's
forward (tests/test_acknowledgements.py), forged senders by our authserv-id
(tests/test_case_handling.py), a bounce of our acknowledgement (tests/test_acknowledgements.py),
header CR/LF refused in `check_headers` (tests/test_acknowledgements.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email.policy
from collections.abc import AsyncIterator, Iterator
from email.utils import make_msgid
from typing import Any

import pytest

from bot.settings import Settings
from handlers.demo.mrkdwn import Line, Pre, Span, parse, unescape
from handlers.mail_in.lookalike import ascii_domain, lookalike_of, mixed_scripts, unicode_domain
from handlers.slack.blocks import escape_mrkdwn
from storage.store import Store
from tests.conftest import CHANNEL, STAFF, wait_until
from tests.support.slack_standin import TEAM_DOMAIN, SlackStandIn
from tests.support.smtp_sink import Sink
from tests.test_acknowledgements import mail
from tests.test_case_handling import ALICE, Harness
from tests.test_replies import MAIL_FROM, _desk

# --- reading Slack's surfaces as Slack renders them -----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Piece:
    """One rendered piece of a surface: `kind` is text, pre, bold, italic, strike, code, link, user,
    channel or special (a broadcast such as @channel); `where` names the surface."""

    kind: str
    text: str
    where: str
    url: str = ""


def _spans(spans: tuple[Span, ...], where: str) -> Iterator[Piece]:
    for span in spans:
        if span.children:
            words = "".join(p.text for p in _spans(span.children, where))
            yield Piece(span.kind, words, where)
            yield from (p for p in _spans(span.children, where) if p.kind != "text")
        else:
            yield Piece(span.kind, span.text, where, span.url)


def _mrkdwn(text: str, where: str) -> Iterator[Piece]:
    for part in parse(text):
        if isinstance(part, Pre):
            yield Piece("pre", part.text, where)
        elif isinstance(part, Line):
            yield from _spans(part.spans, where)


def _objects(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "mrkdwn") and isinstance(value.get("text"), str):
            yield value
        for item in value.values():
            yield from _objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _objects(item)


def rendered(surface: dict[str, Any], where: str) -> list[Piece]:
    """What Slack shows of a message (its `text` and blocks) or a view (its blocks)."""
    pieces: list[Piece] = []
    if isinstance(surface.get("text"), str):  # a message's fallback: notifications read it as mrkdwn
        pieces += _mrkdwn(surface["text"], f"{where} text")
    for obj in _objects(surface.get("blocks") or []):
        if obj["type"] == "plain_text":
            pieces.append(Piece("text", unescape(obj["text"]), where))
        else:
            pieces += _mrkdwn(obj["text"], where)
    for block in surface.get("blocks") or []:  # what a modal pre-fills is shown as typed
        initial = (block.get("element") or {}).get("initial_value")
        if isinstance(initial, str):
            pieces.append(Piece("text", initial, f"{where} input"))
    return pieces


def surfaces(slack: SlackStandIn) -> list[Piece]:
    """Every piece of every message, ephemeral, modal, Home tab and `/privacy` answer the stand-in holds."""
    pieces: list[Piece] = []
    for m in slack.messages:
        if not m["deleted"]:
            pieces += rendered(m, "thread" if m["thread_ts"] else "root")
    for view in slack.views.values():
        pieces += rendered(view, "modal")
    for user, view in slack.home.items():
        pieces += rendered(view, f"home of {user}")
    for response in slack.responses:
        pieces += rendered(response["body"] or {}, "/privacy")
    for ephemeral in slack.ephemerals:
        pieces += rendered(ephemeral, "ephemeral")
    return pieces


def assert_nothing_applied(pieces: list[Piece], *markers: str) -> None:
    """No mention or broadcast but of staff, no link but to a thread, and no formatting around
    any of `markers` (words only the sender wrote)."""
    for p in pieces:
        assert p.kind != "special", f"a broadcast reached {p.where}: {p}"
        assert p.kind != "channel", f"a channel link reached {p.where}: {p}"
        if p.kind == "user":
            assert p.text in STAFF, f"a mention reached {p.where}: {p}"
        if p.kind == "link":
            assert p.url.startswith(f"https://{TEAM_DOMAIN}.slack.com/archives/"), f"a link in {p.where}: {p}"
        if p.kind in ("bold", "italic", "strike", "code"):
            assert not any(m in p.text for m in markers), f"sender formatting applied in {p.where}: {p}"


def visible(pieces: list[Piece], where: str = "") -> str:
    """The words people see on the surfaces whose name starts with `where`."""
    return "\n".join(p.text for p in pieces if p.where.startswith(where))


# --- the desk ------------------------------------------------------------------------------------------

OWN = MAIL_FROM.rpartition("@")[2]  # imal.example


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
    """The desk as `run` takes mail in: MAIL_FROM set, acknowledgements on, a real SMTP server."""
    async with _desk(settings, slack, store, sink) as harness:
        harness.acknowledging = True
        yield harness


def raw_mail(sender: str, subject: str, body: str) -> bytes:
    """An email written byte by byte, as a hostile client may: headers taken as given (raw UTF-8,
    encoded-words that decode to line breaks)."""
    msgid = make_msgid(domain="example.org")
    head = f"From: {sender}\r\nTo: {MAIL_FROM}\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n"
    return (head + "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def encoded(text: str) -> str:
    """`text` as an RFC 2047 encoded-word (what a hostile client writes to smuggle line breaks)."""
    return f"=?utf-8?b?{base64.b64encode(text.encode()).decode()}?="


async def command(desk: Harness, text: str) -> dict[str, Any]:
    """`/privacy TEXT` typed by staff; returns the answer's body."""
    payload = desk.slack.slash_command_payload(text, user=ALICE)
    rid = payload["response_url"].rsplit("/", 1)[-1]
    await desk.slack.send_envelope("slash_commands", payload)
    response = await wait_until(lambda: next((r for r in desk.slack.responses if r["id"] == rid), None))
    assert isinstance(response, dict)
    return dict(response["body"])


async def open_home(desk: Harness) -> dict[str, Any]:
    before = len(desk.slack.calls_to("views.publish"))
    await desk.slack.send_envelope("events_api", desk.slack.app_home_opened_event(ALICE))
    await wait_until(lambda: len(desk.slack.calls_to("views.publish")) > before)
    return dict(desk.slack.home[ALICE])


# --- 1 and 2: mentions, links and formatting in every field -------------------------------------------------

INJECTION = (
    "<!channel> <!here> <!everyone> <@U0ADMIN01> <!subteam^S0PRIV|@privacy-team> <#C0GENERAL> "
    "<http://evil.example/pay|https://bank.example> *EVILBOLD* _EVILITALIC_ ~EVILSTRIKE~ `EVILCODE` "
    "```EVILFENCE```"
)
MARKERS = ("EVIL",)


async def test_mentions_links_and_formatting_from_a_sender_are_shown_and_never_applied(
    desk: Harness, sink: Sink
) -> None:
    message = mail(
        f'"{INJECTION[:60]} *EVILNAME*" <mallory@evil.example>',
        f"Access request {INJECTION}",
        f"Hello,\nplease send me a copy of my personal data.\n{INJECTION}\n"
        "Pay here: https://bаnk.example/login or https://bank.example@evil.example/login",
    )
    message.add_attachment(
        b"%PDF", maintype="application", subtype="pdf", filename="<!channel> *EVILFILE* `x`.pdf"
    )
    ref = await desk.deliver(message.as_bytes())
    assert ref is not None
    await wait_until(lambda: sink.messages, 10)  # the acknowledgement went out: its note is in the thread
    await desk.settle()
    # the modals staff open on the case, and what /privacy and the App Home list
    await desk.open_modal(ref, "case.reply", user=ALICE)
    await desk.open_modal(ref, "case.verify", user=ALICE)
    for query in (f"find {ref}", "find mallory@evil.example", "open", "due 60"):
        await command(desk, query)
    await open_home(desk)

    pieces = surfaces(desk.slack)
    assert_nothing_applied(pieces, *MARKERS)
    # ... and shown, as the characters the sender typed
    root, thread, modal = visible(pieces, "root"), visible(pieces, "thread"), visible(pieces, "modal")
    assert "Access request <!channel> <!here>" in root  # the subject
    assert "*EVILNAME*" in root and "mallory@evil.example" in root  # the requester
    for shown in ("<!subteam^S0PRIV|@privacy-team>", "<http://evil.example/pay|https://bank.example>",
                  "*EVILBOLD* _EVILITALIC_ ~EVILSTRIKE~ `EVILCODE`"):  # fmt: skip
        assert shown in thread, shown  # in the body
    assert "<!channel> *EVILFILE* `x`.pdf" in thread  # the attachment's name
    # links whose text hides where they go say where
    assert "https://bаnk.example/login [goes to xn--bnk-6cd.example]" in thread
    assert "https://bank.example@evil.example/login [goes to evil.example]" in thread
    assert "mallory@evil.example" in modal
    # the listings name the case, never what the sender wrote
    assert ref in visible(pieces, "/privacy") and ref in visible(pieces, "home")
    assert "EVIL" not in visible(pieces, "/privacy") + visible(pieces, "home")


async def test_a_from_name_with_encoded_newlines_renders_no_fake_label_in_the_root(desk: Harness) -> None:
    name = encoded("Ana\n*Deadline:* tomorrow\r\n*Status:* Resolved")
    ref = await desk.deliver(raw_mail(f"{name} <ana@example.org>", "My data", "Please delete my data."))
    assert ref is not None
    pieces = rendered(desk.root(ref), "root")
    assert_nothing_applied(pieces, "Deadline", "tomorrow")
    assert not any(p.kind == "bold" and p.text.startswith(("Deadline", "Status:")) for p in pieces)
    requester = next(p.text for p in pieces if p.text.startswith("Requester"))
    assert requester == "Requester\nAna *Deadline:* tomorrow *Status:* Resolved (ana@example.org)"  # one line


async def test_invisible_direction_and_zero_width_characters_are_shown_in_every_field(desk: Harness) -> None:
    name = encoded("Ana\u202e Lopez\u200b")
    message = mail(
        f"{name} <ana@example.org>",
        "invoice\u202efdp.exe",
        "Please delete my data. See invoice\u202efdp.exe and pay\u200bpal.",
    )
    message.add_attachment(
        b"MZ", maintype="application", subtype="octet-stream", filename="invoice\u202efdp.exe"
    )
    ref = await desk.deliver(message.as_bytes())
    assert ref is not None
    pieces = surfaces(desk.slack)
    everything = visible(pieces)
    assert "\u202e" not in everything and "\u200b" not in everything
    assert "Requester\nAna[U+202E] Lopez[U+200B] (ana@example.org)" in visible(pieces, "root")
    assert "Subject: invoice[U+202E]fdp.exe" in visible(pieces, "root")
    thread = visible(pieces, "thread")
    assert "See invoice[U+202E]fdp.exe and pay[U+200B]pal." in thread
    assert "• invoice[U+202E]fdp.exe (application/octet-stream" in thread


async def test_the_extension_notice_greets_with_a_plain_name_and_quotes_it_without_formatting(
    desk: Harness, sink: Sink
) -> None:
    hostile = encoded("*Ana* _Lopez_") + " <ana@example.org>"
    smuggled = encoded("Ana\r\nBcc: victim@example.net") + " <jo@example.org>"
    for sender, greeting in ((hostile, "Dear *Ana* _Lopez_,"), (smuggled, "Dear Sir or Madam,")):
        ref = await desk.deliver(raw_mail(sender, "My data", "Please send me a copy of my personal data."))
        assert ref is not None
        view = await desk.open_modal(ref, "case.extend", user=ALICE)
        await desk.submit(view, user=ALICE, values={"reason": "several archives to search"})
        note = next(m for m in desk.thread(ref) if "extended the deadline" in m["text"])
        pieces = rendered(note, "thread")
        assert_nothing_applied(pieces, "Ana", "Lopez")
        assert greeting in visible(pieces)
        sent, before = len(sink.messages), set(desk.slack.views)
        await desk.send(desk.slack.block_actions_payload(note, "case.reply_notice", user=ALICE))
        view = await wait_until(
            lambda before=before: next((v for k, v in desk.slack.views.items() if k not in before), None)
        )
        assert isinstance(view, dict)
        body = next(b for b in view["blocks"] if str(b.get("block_id", "")).startswith("body"))
        assert body["element"]["initial_value"].startswith(greeting)
        await desk.submit(view, user=ALICE, values={"body": body["element"]["initial_value"]})
        await wait_until(lambda sent=sent: len(sink.messages) > sent, 10)
        out = sink.messages[-1]
        assert out.get_content().startswith(greeting)
        assert "Bcc" not in out and "victim" not in str(out["To"])


# --- 3: look-alikes of our own domain ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "looks_like_ours"),
    [
        ("іmal.example", True),  # a Cyrillic і
        ("xn--mal-ihd.example", True),  # the same, as mail servers write it
        ("imaӏ.example", True),  # a Cyrillic palochka for the l
        ("irnal.example", True),  # r and n for the m
        ("іmаl.example", True),  # two Cyrillic letters
        ("imal.example", False),
        ("IMAL.EXAMPLE", False),
        ("imal.example.evil.example", False),
        ("example.org", False),
    ],
)
def test_a_domain_made_to_look_like_ours_is_told_apart(domain: str, looks_like_ours: bool) -> None:
    assert lookalike_of(domain, OWN) is looks_like_ours


def test_punycode_and_mixed_scripts_are_read_as_people_see_them() -> None:
    assert unicode_domain("xn--mal-ihd.example") == "іmal.example"
    assert ascii_domain("іmal.example") == "xn--mal-ihd.example"
    assert unicode_domain("xn--mal-hpd.example") == "malқ.example" and mixed_scripts("xn--mal-hpd.example")
    assert unicode_domain("xn--broken-.example") == "xn--broken-.example"  # invalid punycode: as written
    assert mixed_scripts("pаypal.example")  # Latin and a Cyrillic а in one label
    assert not mixed_scripts("παράδειγμα.example") and not mixed_scripts("bücher.example")
    assert not mixed_scripts("日本のドメイン.example")  # kanji, hiragana and katakana are written together


@pytest.mark.parametrize(
    "sender",
    [
        "Data Protection Officer <privacy@іmal.example>",  # our own address, with a Cyrillic і
        "Data Protection Officer <privacy@xn--mal-ihd.example>",  # the same, in punycode
        "Data Protection Officer <privacy@xn--mal-hpd.example>",  # malқ: Latin and Cyrillic mixed
        "Jan Claes <jan.claes@іmal.example>",  # a "colleague" forwarding
        "Ana <ana@pаypal.example>",  # mixed scripts
    ],
)
async def test_a_look_alike_of_our_domain_is_warned_and_never_counts_as_ours(
    desk: Harness, sink: Sink, sender: str
) -> None:
    forward = raw_mail(
        sender,
        "Fwd: delete my data",
        "Please action this today.\r\n\r\n---------- Forwarded message ---------\r\n"
        "From: Ana Lopez <ana.lopez@example.org>\r\nSubject: delete my data\r\n\r\n"
        "Please delete all my personal data from your systems. Ana\r\n",
    )
    ref = await desk.deliver(forward)
    assert ref is not None, "mail posing as ours must open a case, not pass as our own mail"
    case = await desk.case(ref)
    assert case.requester_email == sender.rpartition("<")[2].rstrip(">").lower()  # not the "forwarded" person
    assert "forwarded by a colleague" not in case.reasons
    assert case.sender_check == "fail" and case.sender_check_detail.startswith("look-alike domain")
    root = visible(rendered(desk.root(ref), "root"))
    assert "The sender's address only looks like ours" in root
    assert "xn--" in root  # the form that shows the trick
    thread = visible([p for m in desk.thread(ref) for p in rendered(m, "thread")])
    assert "only looks like ours" in thread
    await wait_until(
        lambda: any("only looks like ours" in n for n in desk.notes(ref)), 5
    )  # no acknowledgement
    assert sink.messages == []


async def test_our_own_address_still_opens_no_case_and_a_colleague_still_forwards(
    desk: Harness, sink: Sink
) -> None:
    own = raw_mail("iMAL Privacy <PRIVACY@IMAL.example>", "Re: [PRIV-2026-0099] your request", "Dear Ana, …")
    assert await desk.deliver(own) is None
    forward = raw_mail(
        "Jan Claes <jan.claes@imal.example>",
        "Fwd: delete my data",
        "FYI\r\n\r\n---------- Forwarded message ---------\r\nFrom: Ana Lopez <ana.lopez@example.org>\r\n"
        "Subject: delete my data\r\n\r\nPlease delete all my personal data. Ana\r\n",
    )
    ref = await desk.deliver(forward)
    assert ref is not None
    case = await desk.case(ref)
    assert case.requester_email == "ana.lopez@example.org" and case.sender_check != "fail"
    assert "only looks like ours" not in visible(rendered(desk.root(ref), "root"))


# --- 5: out-of-office mail without automatic-reply headers -----------------------------------------------

OUT_OF_OFFICE = {
    "de": ("Abwesenheitsnotiz", "Ich bin bis zum 7. Dezember nicht im Büro. In dringenden Fällen wenden Sie "
           "sich bitte an info@example.de."),
    "de2": ("Automatische Antwort: Ihre Anfrage", "Vielen Dank für Ihre Nachricht. Ich bin derzeit nicht "
            "erreichbar."),
    "nl": ("Afwezigheidsbericht", "Ik ben afwezig tot 7 december. Uw e-mail wordt niet doorgestuurd."),
    "fr": ("Absence du bureau", "Je suis absente jusqu'au 7 décembre. Je répondrai à votre message à mon "
           "retour."),
    "fr2": ("Réponse automatique : votre demande", "Je suis absent jusqu'au 7 décembre inclus."),
    "en": ("Out of office", "I am out of the office until 7 December with limited access to email."),
    "en-re": ("Re: my data", "I am out of the office until 7 December. For urgent matters please contact "
              "the front desk."),
}  # fmt: skip
HOLIDAY_REQUESTS = {
    "en": ("Holiday photos", "I was on holiday until last week. Please delete all my personal data."),
    "en?": ("Out of office?", "I am out of the office until Monday, but please send me a copy of my data."),
    "de": ("Auskunft", "Ich bin bis Freitag im Urlaub, bitte senden Sie mir trotzdem eine Auskunft über meine "
           "Daten nach Art. 15 DSGVO."),
    "fr": ("Mes données", "Je suis en vacances jusqu'au 10 décembre ; à mon retour je souhaite recevoir une "
           "copie de toutes mes données personnelles."),
}  # fmt: skip


@pytest.mark.parametrize("language", OUT_OF_OFFICE)
async def test_an_out_of_office_without_headers_opens_no_case(
    desk: Harness, sink: Sink, language: str
) -> None:
    subject, body = OUT_OF_OFFICE[language]
    assert await desk.deliver(mail("Tom Peeters <tom.peeters@example.be>", subject, body).as_bytes()) is None
    assert await desk.store.mail.counts() == {"automated": 1}
    await asyncio.sleep(0.1)
    assert desk.slack.roots(CHANNEL) == [] and sink.messages == []


@pytest.mark.parametrize("language", HOLIDAY_REQUESTS)
async def test_a_request_that_mentions_holidays_still_opens_a_case(desk: Harness, language: str) -> None:
    subject, body = HOLIDAY_REQUESTS[language]
    ref = await desk.deliver(mail("Tom Peeters <tom.peeters@example.be>", subject, body).as_bytes())
    assert ref is not None
    assert (await desk.case(ref)).kind in ("access", "erasure")


# --- 6: extremes --------------------------------------------------------------------------------------------


def _nested(depth: int) -> bytes:
    head = (
        "From: Ana Lopez <ana@example.org>\r\nTo: privacy@imal.example\r\nSubject: nested\r\n"
        f"Message-ID: <nested-{depth}@example.org>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    body = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth)
    )
    body += b"Content-Type: text/plain\r\n\r\nPlease delete all my personal data.\r\n"
    body += b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + body


def _extreme(what: str) -> bytes:
    if what == "nesting 100 deep":
        return _nested(100)
    if what == "nesting 1,000 deep":
        return _nested(1000)
    if what == "a 1 MB header":
        return (
            b"From: ana@example.org\r\nTo: privacy@imal.example\r\nSubject: delete\r\nX-Junk: "
            + b"<!channel> " * (1024 * 1024 // 11)
            + b"\r\nMessage-ID: <header@example.org>\r\n\r\nPlease delete all my personal data.\r\n"
        )
    m = mail("Ana Lopez <ana@example.org>", "Please delete my data", "Please delete all my personal data.")
    if what == "a 10 MB body":
        m.set_content(
            "Please delete all my personal data.\n" + ("<!channel> *lorem* ipsum " * 40 + "\n") * 10_000
        )
    elif what == "a 2,000-character subject":
        m.replace_header("Subject", "Please delete my data " + "<!here> *x* " * 165)
    elif what == "5,000 attachments":
        for i in range(5000):
            m.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"<!here>{i}.bin")
    return m.as_bytes()


@pytest.mark.parametrize(
    ("what", "flag"),
    [
        ("a 10 MB body", "Text cut here"),
        ("5,000 attachments", "… and 4,980 more"),
        ("a 2,000-character subject", "characters, cut at 998"),
        ("nesting 100 deep", "Please delete all my personal data."),
        ("nesting 1,000 deep", "MIME parts nested too deep to read"),
        ("a 1 MB header", "header x-junk: "),
    ],
)
async def test_an_extreme_email_opens_its_case_stored_and_shown_within_slacks_limits(
    desk: Harness, what: str, flag: str
) -> None:
    raw = _extreme(what)
    ref = await desk.deliver(raw)
    assert ref is not None
    case = await desk.case(ref)
    [stored] = await desk.store.mail.of_case(case.id)
    if what == "5,000 attachments":
        assert stored.attachment_count == 5000
        assert "Attachments (5,000, not stored):" in visible(rendered(desk.thread(ref)[0], "thread"))
    if what == "a 10 MB body":
        assert len(stored.body_text) == 200_000  # kept up to the cap, the cut noted
        assert "body cut at 200000 characters" in stored.problems
    pieces = surfaces(desk.slack)  # the stand-in refused nothing: posts beyond a limit fail there
    assert [c for c in desk.slack.calls if c.get("error")] == []
    assert flag in visible(pieces, "thread")
    assert_nothing_applied(pieces)


# --- 7: header injection in what we send -------------------------------------------------------------------

EXPECTED_HEADERS = {
    "from", "to", "subject", "date", "message-id", "in-reply-to", "references", "auto-submitted",
    "x-auto-response-suppress", "content-type", "content-transfer-encoding", "mime-version", "content-language",
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "subject", "extra"),
    [
        ("Ana", "delete " + encoded("me\r\nBcc: victim@example.net"), {}),
        (encoded("Ana\r\nBcc: victim@example.net"), "delete my data", {}),
        ("Ana", "delete my data", {"References": "<a@example.org>\r\n Bcc: victim@example.net"}),
        (
            "Ana",
            "delete my data",
            {"In-Reply-To": "<x@example.org>" + encoded("\r\nBcc: victim@example.net")},
        ),
        ("Ana", "delete " + "my data " * 400 + encoded("\nBcc: victim@example.net"), {}),
        ("Ana" * 400, "delete " + encoded("\x00\r\n\r\nbody"), {}),
    ],
    ids=[
        "encoded CRLF in subject",
        "encoded CRLF in name",
        "folded references",
        "encoded in-reply-to",
        "very long subject",
        "very long name, NUL",
    ],
)
async def test_crafted_values_never_add_a_header_to_what_we_send(
    desk: Harness, sink: Sink, name: str, subject: str, extra: dict[str, str]
) -> None:
    raw = (
        f"From: {name} <ana@example.org>\r\nTo: {MAIL_FROM}\r\nSubject: {subject}\r\n"
        f"Message-ID: <crafted-{abs(hash(subject + name))}@example.org>\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in extra.items())
        + "\r\nPlease delete all my personal data.\r\n"
    ).encode()
    ref = await desk.deliver(raw)
    assert ref is not None
    await wait_until(lambda: sink.messages, 10)
    [ack] = sink.messages
    assert set(k.lower() for k in ack) <= EXPECTED_HEADERS
    assert [k.lower() for k in ack].count("to") == 1 and "bcc" not in {k.lower() for k in ack}
    assert sink.recipients == [["ana@example.org"]]
    raw_headers = ack.as_bytes(policy=email.policy.SMTP).split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc" not in raw_headers and b"\x00" not in raw_headers
    assert max(len(line) for line in raw_headers.split(b"\r\n")) <= 998  # RFC 5322's line limit


def test_escaping_shows_control_characters_and_leaves_ordinary_text_alone() -> None:
    assert escape_mrkdwn("a\x1b[31mred\x07") == "a[U+001B][31mred[U+0007]"
    assert escape_mrkdwn("line one\nline two\ttab") == "line one\nline two\ttab"
    assert escape_mrkdwn("see https://example.org/a?b=1 and www.example.org") == (
        "see https://example.org/a?b=1 and www.example.org"
    )
