"""`parse_email(raw) -> InboundEmail` (handlers/parsing.py) over the recorded fixtures, built MIME
structures, hostile and broken bytes, and (with ../shared) the wild corpus. It never raises."""

from __future__ import annotations

import base64
import random
import re
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from handlers.mail_in.body_text import split_reply
from handlers.mail_in.parsing import MAX_TEXT, Attachment, InboundEmail, parse_email, synthetic_message_id
from tests.conftest import FIXTURES, shared_path

EMAILS = FIXTURES / "emails"
SYNTHETIC = re.compile(r"^<[0-9a-f]{40}@synthetic\.privacy-desk\.invalid>$")
MESSAGE_ID = re.compile(r"^<[^<>\s]+>$")

#: fixture -> (Message-ID, whether it is synthetic)
FIXTURE_IDS = {
    "access-short-en.eml": ("<short-access-1@example.org>", False),
    "alternative-plain-html.eml": ("<alt-1@example.be>", False),
    "bad-charset-and-headers.eml": ("<weird-1@example.org>", False),
    "bounce-dsn.eml": ("<bounce-1@mx.example.net>", False),
    "erasure-fr-qp.eml": ("<erasure-fr-1@example.net>", False),
    "flowed-signature.eml": ("<flowed-1@example.org>", False),
    "followup-reply.eml": ("<short-access-2@example.org>", False),
    "html-quoted-reply.eml": ("<html-reply-1@example.net>", False),
    "injection-html.eml": ("<inject-1@example.com>", False),
    # synthetic ids are derived from the content; they must never change between releases, or a
    # message fetched again after an upgrade (UIDVALIDITY change) would open a second case
    "no-message-id.eml": ("<e9df380098a26d2408aa6095ba99dc584102f5e0@synthetic.privacy-desk.invalid>", True),
    "outlook-binary.msg": ("<b96bd54e4a2fbcb53a00c35662440a0436a30d02@synthetic.privacy-desk.invalid>", True),
    "vacation-auto-reply.eml": ("<auto-1@example.be>", False),
}


def fixture(name: str) -> bytes:
    return (EMAILS / name).read_bytes()


def parse_fixture(name: str) -> InboundEmail:
    return parse_email(fixture(name))


def headers(*lines: str, body: str = "body\r\n") -> bytes:
    """A message from header lines and a body, CRLF line endings."""
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def assert_well_formed(email: InboundEmail) -> None:
    """What every caller may rely on, whatever the input."""
    assert isinstance(email, InboundEmail)
    assert MESSAGE_ID.match(email.message_id), email.message_id
    if email.synthetic_id:
        assert SYNTHETIC.match(email.message_id), email.message_id
    for name in ("subject", "from_name", "from_addr", "reply_to"):
        value = getattr(email, name)
        assert isinstance(value, str)
        assert not re.search(r"[\x00-\x1f\x7f]", value), (name, value)
    assert all("\n" not in a and "\r" not in a for a in (*email.to, *email.cc))
    assert "\x00" not in email.text
    assert len(email.text) <= MAX_TEXT
    assert all(isinstance(a, Attachment) for a in email.attachments)
    # every string can be stored as UTF-8 (8-bit header bytes must not survive as surrogates)
    strings = [
        email.message_id,
        email.subject,
        email.from_name,
        email.from_addr,
        email.reply_to,
        email.content_type,
        email.report_type,
        email.text,
        email.new_text,
        email.quoted_text,
        email.signature,
        *email.to,
        *email.cc,
        *email.in_reply_to,
        *email.references,
        *email.problems,
        *email.part_types,
        *(v for _, v in email.headers),
        *(f"{a.filename}{a.content_type}" for a in email.attachments),
    ]
    for value in strings:
        value.encode("utf-8")


# --- the recorded fixtures -------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EMAILS.iterdir()), ids=lambda p: p.name)
def test_every_fixture_parses_into_a_well_formed_email(path: Path) -> None:
    email = parse_email(path.read_bytes())
    assert_well_formed(email)
    assert 0 <= email.size <= len(path.read_bytes())


@pytest.mark.parametrize(("name", "expected"), FIXTURE_IDS.items())
def test_fixture_message_ids(name: str, expected: tuple[str, bool]) -> None:
    email = parse_fixture(name)
    assert (email.message_id, email.synthetic_id) == expected


@pytest.mark.parametrize("name", ["no-message-id.eml", "outlook-binary.msg"])
def test_a_synthetic_message_id_is_stable_and_derived_from_the_content(name: str) -> None:
    raw = fixture(name)
    assert parse_email(raw).message_id == parse_email(raw).message_id == synthetic_message_id(raw)
    assert SYNTHETIC.match(parse_email(raw).message_id)
    assert parse_email(raw + b"one more line\n").message_id != parse_email(raw).message_id


def test_a_synthetic_message_id_does_not_depend_on_line_endings_or_trailing_blanks() -> None:
    lf = fixture("no-message-id.eml")
    assert b"\r\n" not in lf
    crlf = lf.replace(b"\n", b"\r\n")
    padded = lf.replace(b"\n", b"  \t\r\n") + b"\r\n\r\n"
    ids = {parse_email(raw).message_id for raw in (lf, crlf, padded)}
    assert ids == {FIXTURE_IDS["no-message-id.eml"][0]}


@pytest.mark.parametrize("name", [n for n in FIXTURE_IDS if n.endswith(".eml")])
def test_crlf_and_lf_versions_of_a_fixture_parse_the_same(name: str) -> None:
    raw = fixture(name).replace(b"\r\n", b"\n")
    lf, crlf = parse_email(raw), parse_email(raw.replace(b"\n", b"\r\n"))
    assert (lf.message_id, lf.subject, lf.from_addr, lf.to, lf.new_text.replace("\r", "")) == (
        crlf.message_id,
        crlf.subject,
        crlf.from_addr,
        crlf.to,
        crlf.new_text.replace("\r", ""),
    )


def test_plain_text_request() -> None:
    email = parse_fixture("access-short-en.eml")
    assert (email.subject, email.from_name, email.from_addr, email.to, email.cc) == (
        "my data",
        "Marie Dubois",
        "marie.dubois@example.org",
        ("privacy@imal.example",),
        (),
    )
    assert email.requester == "marie.dubois@example.org"
    assert email.sent_at is not None
    assert email.sent_at.isoformat() == "2026-11-24T21:14:03+01:00"
    assert (email.content_type, email.html_only, email.unreadable, email.problems) == (
        "text/plain",
        False,
        False,
        (),
    )
    assert email.new_text == "Hi, can you send me a copy of the personal data you have about me?"
    assert email.signature == "Thanks\nMarie"
    assert email.attachments == ()


def test_rfc2047_headers_and_quoted_printable_body_are_decoded() -> None:
    email = parse_fixture("erasure-fr-qp.eml")
    assert email.subject == "Suppression de mes données"
    assert email.from_name == "Jérôme Lefèvre"
    assert email.from_addr == "jerome.lefevre@example.net"
    assert "toutes mes données personnelles." in email.text  # the soft line break is joined
    assert (
        email.new_text
        == "Bonjour,\n\nMerci de supprimer mon compte FabLab et toutes mes données personnelles."
    )
    assert email.signature == "Cordialement,\nJérôme"


def test_unknown_charsets_fall_back_instead_of_failing() -> None:
    email = parse_fixture("bad-charset-and-headers.eml")
    assert email.subject == "Accès à mes données"  # =?x-unknown?q?...?= read as Latin-1
    assert email.text.strip() == "Je voudrais accéder à mes données."  # charset="fakescii", 8-bit Latin-1
    assert email.sent_at is None
    assert "header date: unreadable" in email.problems
    assert email.to == ()  # "unlisted-recipients:;" is an empty group


def test_an_encoded_crlf_in_from_does_not_forge_an_address() -> None:
    email = parse_fixture("bad-charset-and-headers.eml")
    assert email.from_addr == "sender@example.org"
    assert email.requester == "sender@example.org"
    assert "\r" not in email.from_name and "\n" not in email.from_name
    assert "x@y.z" not in (email.from_addr, email.reply_to, *email.to, *email.cc)
    assert not any(k == "bcc" for k, _ in email.headers)


@pytest.mark.parametrize(
    "from_header",
    [
        "From: =?utf-8?q?Evil=0D=0ABcc=3A_x=40y=2Ez?= <real@evil.example>",
        "From: =?utf-8?q?boss=40bank=2Eexample_=3Cboss=40bank=2Eexample=3E?= <real@evil.example>",
        "From: =?utf-8?q?x=3E=2C_=3Cboss=40bank=2Eexample?= <real@evil.example>",
        "From: =?utf-8?b?"
        + base64.b64encode(b"Boss\r\nFrom: boss@bank.example").decode()
        + "?= <real@evil.example>",
        "From: real@evil.example (=?utf-8?q?boss=40bank=2Eexample?=)",
        'From: "Boss\r\n\tvia bank" <real@evil.example>',
    ],
)
def test_encoded_words_in_from_cannot_pose_as_another_address(from_header: str) -> None:
    email = parse_email(headers(from_header, "Message-ID: <f@evil.example>", "Reply-To: real@evil.example"))
    assert_well_formed(email)
    assert email.from_addr == "real@evil.example"
    assert email.requester == "real@evil.example"
    assert "boss@bank.example" not in (email.from_addr, email.reply_to, *email.to, *email.cc)


@pytest.mark.parametrize(
    ("subject", "decoded"),
    [
        ("Re: =?utf-8?q?caf=C3=A9?= au lait", "Re: café au lait"),
        ("=?iso-8859-1?q?caf=E9?= =?iso-8859-1?q?_cr=E8me?=", "café crème"),
        ("=?UTF-8?B?w6lsw6h2ZQ==?=", "élève"),
        ("=?koi8-r?b?8NLJ18XU?=", "Привет"),
        ("=?x-unknown?q?caf=E9?= et =?utf-8?q?cr=C3=A8me?=", "café et crème"),
        ("=?unknown-8bit?q?caf=E9?=", "café"),
        ("=?utf-8?q?a=0D=0AX-Injected=3A_1?=", "a X-Injected: 1"),
        ("  lots   of\r\n \t folded    space  ", "lots of folded space"),
    ],
)
def test_subjects_are_decoded_to_one_line(subject: str, decoded: str) -> None:
    email = parse_email(headers("From: a@example.org", "Message-ID: <s@example.org>", f"Subject: {subject}"))
    assert email.subject == decoded


def test_raw_utf8_in_a_subject_is_read() -> None:
    raw = b"From: a@example.org\r\nMessage-ID: <s@example.org>\r\nSubject: caf\xc3\xa9 cr\xc3\xa8me\r\n\r\nx"
    assert parse_email(raw).subject == "café crème"


def test_raw_latin1_in_a_subject_falls_back_like_a_body() -> None:
    raw = (
        b"From: a@example.org\r\nMessage-ID: <s@example.org>\r\n"
        b"Subject: acc\xe8s \xe0 mes donn\xe9es\r\n\r\nx"
    )
    assert parse_email(raw).subject == "accès à mes données"


def test_address_headers_are_lower_cased_and_reply_to_wins_as_requester() -> None:
    email = parse_email(
        headers(
            "From: =?utf-8?q?J=C3=A9r=C3=B4me?= <Jerome@Example.NET>",
            "To: Privacy <Privacy@IMAL.example>, dpo@imal.example",
            "Cc: =?utf-8?q?Lawyer?= <counsel@example.com>",
            "Reply-To: Jerome Private <jerome.private@example.org>",
            "Message-ID: <r@example.net>",
        )
    )
    assert (email.from_name, email.from_addr) == ("Jérôme", "jerome@example.net")
    assert email.to == ("privacy@imal.example", "dpo@imal.example")
    assert email.cc == ("counsel@example.com",)
    assert email.reply_to == "jerome.private@example.org"
    assert email.requester == "jerome.private@example.org"


def test_a_reply_to_equal_to_from_is_not_repeated() -> None:
    email = parse_email(
        headers("From: a@example.org", "Reply-To: A@Example.org", "Message-ID: <r@example.org>")
    )
    assert (email.reply_to, email.requester) == ("", "a@example.org")


def test_sender_stands_in_for_a_missing_from() -> None:
    email = parse_email(headers("Sender: list-owner@example.org", "Message-ID: <r@example.org>"))
    assert email.from_addr == "list-owner@example.org"


def test_thread_headers_are_kept() -> None:
    email = parse_fixture("followup-reply.eml")
    assert email.in_reply_to == ("<short-access-1@example.org>",)
    assert email.references == ("<short-access-1@example.org>",)
    refs = " ".join(f"<r{i}@example.org>" for i in range(80))
    many = parse_email(
        headers("From: a@example.org", "Message-ID: <x@example.org>", f"References: {refs} <r0@example.org>")
    )
    assert len(many.references) == 50
    assert many.references[-1] == "<r79@example.org>"  # the most recent ones are kept


def test_headers_of_interest_are_kept_for_classification() -> None:
    email = parse_fixture("vacation-auto-reply.eml")
    assert email.header("Auto-Submitted") == "auto-replied"
    assert email.header_all("auto-submitted") == ["auto-replied"]
    assert email.header("X-Mailer") is None
    assert email.header("from") is None  # only the listed headers are kept


def test_a_delivery_status_report_is_recognised_as_such() -> None:
    email = parse_fixture("bounce-dsn.eml")
    assert (email.content_type, email.report_type) == ("multipart/report", "delivery-status")
    assert email.from_addr == "mailer-daemon@mx.example.net"
    assert email.text.startswith("This is the mail system")
    assert [(a.filename, a.content_type) for a in email.attachments] == [
        ("delivery status", "message/delivery-status")
    ]
    assert email.attachments[0].size > 0


# --- HTML ------------------------------------------------------------------------------------------


def test_html_only_becomes_text_without_script_and_with_entities_decoded() -> None:
    email = parse_fixture("injection-html.eml")
    assert email.html_only
    assert "alert" not in email.text
    assert "<script" not in email.text and "<p>" not in email.text
    assert "Please delete my data & account" in email.text
    assert email.from_name == "<!channel> Mallory"  # kept as data; rendering escapes it
    assert email.subject == "<@U0ADMIN> please check <https://evil.example|your account>"


def test_html_quotes_become_quote_lines_and_are_set_apart() -> None:
    email = parse_fixture("html-quoted-reply.eml")
    assert email.html_only
    assert "tracking" not in email.text and "color: red" not in email.text
    assert "> > Can you confirm that you want your data deleted?" in email.text.splitlines()
    assert email.new_text == "Yes, I confirm: please delete all my data.\n\nLena"
    assert "Can you confirm" in email.quoted_text
    assert "Older text" in email.quoted_text
    assert "Can you confirm" not in email.new_text


def test_multipart_alternative_prefers_plain_text() -> None:
    email = parse_fixture("alternative-plain-html.eml")
    assert email.text == "Plain version: please erase my FabLab account."
    assert not email.html_only
    assert email.attachments == ()


def test_multipart_alternative_with_an_empty_plain_part_uses_the_html() -> None:
    msg = EmailMessage()
    msg["From"], msg["Message-ID"] = "a@example.org", "<alt@example.org>"
    msg.set_content("   \n")
    msg.add_alternative("<p>Only the <b>HTML</b> says it: erase me.</p>", subtype="html")
    email = parse_email(msg.as_bytes())
    assert email.text == "Only the HTML says it: erase me."
    assert email.html_only


# --- attachments -------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 300


def message_with_attachments() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Marie Dubois <marie.dubois@example.org>"
    msg["To"] = "privacy@imal.example"
    msg["Subject"] = "my ID"
    msg["Message-ID"] = "<att-1@example.org>"
    msg.set_content("Please find my passport attached.\n")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="passport scan.pdf")
    msg.add_attachment(PNG, maintype="image", subtype="png", filename="photo.png", disposition="inline")
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="données été.csv")
    return msg


def test_attachments_are_recorded_by_name_type_and_size() -> None:
    email = parse_email(message_with_attachments().as_bytes(policy=SMTP))
    assert email.text.strip() == "Please find my passport attached."
    assert email.attachments == (
        Attachment("passport scan.pdf", "application/pdf", len(PDF)),
        Attachment("photo.png", "image/png", len(PNG)),  # inline images are listed too
        Attachment("données été.csv", "text/csv", 8),  # RFC 2231 file name decoded
    )
    assert "multipart/mixed" in email.part_types
    assert "%PDF" not in email.text


def test_a_forwarded_message_is_an_attachment_not_body_text() -> None:
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "shop@example.com", "Your order"
    inner.set_content("Your order of 3 items has shipped.\n")
    msg = EmailMessage()
    msg["From"], msg["Message-ID"] = "a@example.org", "<fwd@example.org>"
    msg.set_content("See the forwarded mail: why do you have my address?\n")
    msg.add_attachment(inner)
    email = parse_email(msg.as_bytes())
    assert email.text.strip() == "See the forwarded mail: why do you have my address?"
    [attached] = email.attachments
    assert (attached.filename, attached.content_type) == ("attached message", "message/rfc822")
    assert attached.size > len("Your order of 3 items has shipped.")
    assert "shipped" not in email.text


def test_an_html_attachment_is_not_read_as_the_body() -> None:
    msg = EmailMessage()
    msg["From"], msg["Message-ID"] = "a@example.org", "<h@example.org>"
    msg.set_content("The invoice is attached.\n")
    msg.add_attachment("<p>Invoice 42</p>", subtype="html", filename="invoice.html")
    email = parse_email(msg.as_bytes())
    assert email.text.strip() == "The invoice is attached."
    assert [(a.filename, a.content_type) for a in email.attachments] == [("invoice.html", "text/html")]


# --- format=flowed, quoted history, signature ----------------------------------------------------------


def test_format_flowed_is_unwrapped_and_the_signature_kept_apart() -> None:
    email = parse_fixture("flowed-signature.eml")
    assert email.new_text == (
        "Hello, under article 15 of the GDPR I would like a copy of all the personal data you hold about me, "
        "including the recipients it was shared with.\n"
        "From now on, please write to this address."  # space-stuffing removed
    )
    assert email.signature == "-- \nPieter De Smet\n+32 555 12 34 56"


def test_format_flowed_delsp_joins_without_the_space() -> None:
    raw = headers(
        "From: a@example.org",
        "Message-ID: <d@example.org>",
        "Content-Type: text/plain; charset=utf-8; format=flowed; delsp=yes",
        body="Verwijder al mijn gege \r\nvens alstublieft.\r\n",
    )
    assert parse_email(raw).text.strip() == "Verwijder al mijn gegevens alstublieft."


def test_plain_text_without_format_flowed_is_not_joined() -> None:
    raw = headers(
        "From: a@example.org",
        "Message-ID: <p@example.org>",
        "Content-Type: text/plain",
        body="first line \r\nsecond line\r\n",
    )
    assert parse_email(raw).text.replace("\r", "") == "first line \nsecond line\n"


def test_quoted_history_is_separated_from_the_new_text() -> None:
    email = parse_fixture("followup-reply.eml")
    assert email.new_text == "Any news about my request?"
    assert email.quoted_text.startswith("On Tue, 24 Nov 2026 at 21:14, Marie Dubois")
    assert "> Hi, can you send me a copy" in email.quoted_text
    assert not email.forwarded


@pytest.mark.parametrize("name", [n for n in FIXTURE_IDS if n.endswith(".eml")])
def test_the_reply_parts_are_those_of_split_reply_on_the_whole_text(name: str) -> None:
    email = parse_fixture(name)
    parts = split_reply(email.text)
    assert (email.new_text, email.quoted_text, email.signature, email.forwarded) == (
        parts.new_text,
        parts.quoted,
        parts.signature,
        parts.forwarded,
    )


# --- what is not an email ----------------------------------------------------------------------------


def test_an_outlook_msg_file_is_unreadable_with_a_synthetic_id() -> None:
    raw = fixture("outlook-binary.msg")
    email = parse_email(raw)
    assert email.unreadable
    assert email.synthetic_id
    assert email.message_id == synthetic_message_id(raw)
    assert email.problems == ("no email headers found",)
    assert (email.text, email.from_addr, email.subject, email.attachments) == ("", "", "", ())
    assert email.size == len(raw)


def test_bytes_without_headers_are_unreadable_but_their_text_is_kept() -> None:
    raw = b"please delete my data, my name is Jo\nthank you\n"
    email = parse_email(raw)
    assert email.unreadable
    assert SYNTHETIC.match(email.message_id)
    assert email.text == raw.decode()
    assert email.new_text == raw.decode().strip()


@pytest.mark.parametrize("raw", [b"", b"\n", b"\r\n\r\n", b"\x00" * 64, bytes(range(256))])
def test_empty_or_binary_input_is_unreadable(raw: bytes) -> None:
    email = parse_email(raw)
    assert_well_formed(email)
    assert email.unreadable
    assert email.text.strip() == ""


def test_an_mbox_from_line_is_removed() -> None:
    raw = b"From marie.dubois@example.org Tue Nov 24 21:14:03 2026\n" + fixture("access-short-en.eml")
    email = parse_email(raw)
    assert (email.message_id, email.subject, email.from_addr) == (
        "<short-access-1@example.org>",
        "my data",
        "marie.dubois@example.org",
    )
    assert "mbox separator line removed" in email.problems


def test_a_byte_order_mark_is_removed() -> None:
    email = parse_email(b"\xef\xbb\xbf" + fixture("erasure-fr-qp.eml"))
    assert (email.message_id, email.from_addr) == ("<erasure-fr-1@example.net>", "jerome.lefevre@example.net")
    assert "byte-order mark removed" in email.problems


def test_a_bom_before_an_mbox_line_is_removed_too() -> None:
    raw = b"\xef\xbb\xbfFrom x@example.org Tue Nov 24 21:14:03 2026\r\n" + fixture("access-short-en.eml")
    assert parse_email(raw).subject == "my data"


def test_obsolete_space_before_the_colon_is_accepted() -> None:
    raw = headers(
        "From : Jo <jo@example.org>",
        "Subject : Inzage",
        "Message-ID : <obs@example.org>",
        body="Ik wil inzage.\r\n",
    )
    email = parse_email(raw)
    assert (email.subject, email.from_addr, email.message_id) == (
        "Inzage",
        "jo@example.org",
        "<obs@example.org>",
    )
    assert "obsolete header syntax" in email.problems
    assert not email.unreadable


def test_a_from_colon_header_is_not_mistaken_for_an_mbox_line() -> None:
    email = parse_email(headers("From : jo@example.org", "Message-ID: <m@example.org>"))
    assert email.from_addr == "jo@example.org"
    assert "mbox separator line removed" not in email.problems


def test_nul_characters_are_removed_from_the_text() -> None:
    raw = headers("From: a@example.org", "Message-ID: <n@example.org>", body="de\x00lete m\x00e\r\n")
    assert parse_email(raw).text.strip() == "delete me"


def test_a_huge_body_is_cut_with_a_problem_noted() -> None:
    raw = headers("From: a@example.org", "Message-ID: <big@example.org>", body="x" * (MAX_TEXT + 5000))
    email = parse_email(raw)
    assert len(email.text) == MAX_TEXT
    assert f"body cut at {MAX_TEXT} characters" in email.problems


# --- huge headers ------------------------------------------------------------------------------------


def parse_timed(raw: bytes) -> tuple[InboundEmail, float]:
    start = time.perf_counter()
    email = parse_email(raw)
    return email, time.perf_counter() - start


def test_a_200_kb_encoded_subject_parses_quickly() -> None:
    subject = " ".join(["=?utf-8?q?donn=C3=A9es?="] * 9000)
    assert len(subject) > 200_000
    email, seconds = parse_timed(
        headers("From: a@example.org", "Message-ID: <h@example.org>", f"Subject: {subject}")
    )
    assert seconds < 0.5
    assert email.subject.startswith("donnéesdonnées")
    assert len(email.subject) <= 998
    assert any(p.startswith("header subject:") for p in email.problems)


def test_a_200_kb_from_header_parses_quickly() -> None:
    name = " ".join(["=?utf-8?q?caf=C3=A9?="] * 10000)
    email, seconds = parse_timed(headers(f"From: {name} <a@example.org>", "Message-ID: <h@example.org>"))
    assert seconds < 1.0
    assert email.from_addr == "a@example.org"
    assert len(email.from_name) <= 200


def test_a_300_kb_references_header_parses_quickly() -> None:
    refs = " ".join(f"<r{i}@example.org>" for i in range(20000))
    assert len(refs) > 300_000
    email, seconds = parse_timed(
        headers("From: a@example.org", "Message-ID: <h@example.org>", f"References: {refs}")
    )
    assert len(email.references) == 50
    assert seconds < 0.25


def test_a_long_content_type_header_parses_quickly() -> None:
    params = "; ".join(f"p{i}=v" for i in range(5000))
    assert len(params) > 40_000
    email, seconds = parse_timed(
        headers(
            "From: a@example.org",
            "Message-ID: <h@example.org>",
            f"Content-Type: text/plain; charset=utf-8; {params}",
        )
    )
    assert email.text.strip() == "body"
    assert seconds < 0.5


# --- random and truncated bytes ------------------------------------------------------------------------


def mutations(count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` broken versions of the fixtures: truncated, bytes flipped, NULs or MIME punctuation
    inserted, a slice removed. Seeded, so a failure names a reproducible case."""
    rng = random.Random(seed)
    sources = [(p.name, p.read_bytes()) for p in sorted(EMAILS.iterdir())]
    tokens = [
        b"\r\n",
        b"\n\n",
        b"=?",
        b"?=",
        b"=?utf-8?q?=0D=0A?=",
        b"--b0",
        b"<",
        b">",
        b":",
        b'"',
        b"\\",
        b";",
        b"\xff\xfe",
        b"\x00",
        b"boundary=",
        b"charset=",
        b"Content-Type: multipart/mixed\r\n",
    ]
    out = []
    for i in range(count):
        name, original = rng.choice(sources)
        raw = bytearray(original)
        op = i % 5
        if op == 0:
            raw = raw[: rng.randrange(len(raw) + 1)]
        elif op == 1:
            for _ in range(rng.randint(1, 12)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif op == 2:
            for _ in range(rng.randint(1, 12)):
                raw.insert(rng.randrange(len(raw) + 1), 0)
        elif op == 3:
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(raw) + 1)
                raw[at:at] = rng.choice(tokens)
        else:
            a, b = sorted((rng.randrange(len(raw) + 1), rng.randrange(len(raw) + 1)))
            raw = raw[:a] + raw[b:]
        out.append(
            (f"#{i} {['truncated', 'flipped', 'NULs', 'tokens', 'slice removed'][op]} {name}", bytes(raw))
        )
    return out


def test_parse_email_never_raises_on_broken_bytes() -> None:
    failures = []
    for label, raw in mutations(300, seed=20261125):
        try:
            assert_well_formed(parse_email(raw))
        except Exception as e:  # collect every failing case, with the seed index to reproduce it
            failures.append(f"{label}: {type(e).__name__}: {e}")
    assert failures == []


def test_mutations_are_reproducible() -> None:
    assert mutations(20, seed=1) == mutations(20, seed=1)
    assert mutations(20, seed=1) != mutations(20, seed=2)


# --- the wild corpus (../shared) ---------------------------------------------------------------------

NOT_MAIL = {"SOURCES.md", "README.txt", "COPYING", "ARTISTIC-LICENSE.txt", ".gitattributes"}


@pytest.mark.shared
def test_every_message_of_the_wild_corpus_parses() -> None:
    root = shared_path("corpus", "wild")
    files = [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in NOT_MAIL and not p.name.startswith("LICENSE")
    ]
    assert len(files) > 100
    failures = []
    start = time.perf_counter()
    for path in files:
        try:
            email = parse_email(path.read_bytes())
            assert MESSAGE_ID.match(email.message_id), email.message_id
            assert_well_formed(email)
        except Exception as e:  # report every file that fails, not only the first
            failures.append(f"{path.relative_to(root)}: {type(e).__name__}: {e}")
    elapsed = time.perf_counter() - start
    assert failures == []
    assert elapsed < 60, f"{len(files)} files took {elapsed:.1f} s"
