"""Machine traffic: bounces and auto-replies are recognised; people are never taken for machines."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from handlers.mail_in.machine_mail import detect_automated
from handlers.mail_in.parsing import InboundEmail, parse_email


def mail(subject: str, body: str, *, sender: str = "Ana Peeters <ana@example.org>", **headers: str) -> InboundEmail:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return parse_email(m.as_bytes())


DSN = b"""From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: privacy@imal.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0"

--b0
Content-Type: text/plain

Your message could not be delivered.
--b0
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.net
Action: failed
Status: 5.1.1
--b0--
"""

MDN = b"""From: Frank Hill <frank.hill@example.org>
To: privacy@imal.example
Subject: Read: Your request to delete your data
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="m0"

--m0
Content-Type: text/plain

Your message was read on Tuesday.
--m0
Content-Type: message/disposition-notification

Final-Recipient: rfc822; frank.hill@example.org
Disposition: manual-action/MDN-sent-manually; displayed
--m0--
"""


# ---------------------------------------------------------------------------------------------
# bounces


def test_delivery_status_report_is_a_bounce() -> None:
    verdict = detect_automated(parse_email(DSN))
    assert verdict is not None and verdict.kind == "bounce" and verdict.certain
    assert "multipart/report delivery-status" in verdict.reasons


def test_mailer_daemon_text_bounce_without_report() -> None:
    email = mail("failure notice", "Sorry, we were unable to deliver your message.",
                 sender="MAILER-DAEMON@smtp.example.fr")
    verdict = detect_automated(email)
    assert verdict is not None and verdict.kind == "bounce"


def test_bounce_recognised_from_subject_and_wording_together() -> None:
    email = mail("Delivery Status Notification (Failure)",
                 "Your message wasn't delivered to lucas@example.com because the address couldn't be found.",
                 sender="Mail Delivery Subsystem <mail-delivery@mx.example.com>")
    verdict = detect_automated(email)
    assert verdict is not None and verdict.kind == "bounce" and not verdict.certain


def test_x_failed_recipients_is_a_bounce() -> None:
    email = mail("Mail delivery failed", "A message could not be delivered.", X_Failed_Recipients="h@example.de")
    verdict = detect_automated(email)
    assert verdict is not None and verdict.kind == "bounce"


def test_a_person_asking_about_an_undeliverable_mail_is_not_a_bounce() -> None:
    email = mail("Undeliverable?", "Hi, my last mail to you bounced, so please delete my data. Thanks")
    assert detect_automated(email) is None


# ---------------------------------------------------------------------------------------------
# auto-replies


@pytest.mark.parametrize(
    ("subject", "headers"),
    [
        ("Automatic reply: Delete my data", {"Auto_Submitted": "auto-generated"}),
        ("Re: Verwijder mijn gegevens", {"Auto_Submitted": "auto-replied"}),
        ("Réponse automatique : Demande d'accès", {"X_Autoreply": "yes"}),
        ("Abwesenheitsnotiz: Löschung", {"X_Autorespond": "1"}),
        ("Out of office: your request", {"Precedence": "auto_reply"}),
    ],
)
def test_auto_reply_headers_win_over_a_request_like_subject(subject: str, headers: dict[str, str]) -> None:
    verdict = detect_automated(mail(subject, "I am away until Monday.", **headers))
    assert verdict is not None and verdict.kind == "auto_reply" and verdict.certain


def test_read_receipt_is_an_auto_reply() -> None:
    verdict = detect_automated(parse_email(MDN))
    assert verdict is not None and verdict.kind == "auto_reply"


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Out of Office: Re: your access request", "I am currently out of the office and will return on Monday."),
        ("Absence du bureau : suppression", "Je suis actuellement absente et de retour le 10 mars."),
        ("Afwezig: uw verzoek", "Ik ben afwezig tot 12 augustus."),
        ("Abwesend: Löschung", "Ich bin bis einschließlich 10. März abwesend."),
    ],
)
def test_vacation_reply_without_headers_needs_subject_and_wording(subject: str, body: str) -> None:
    verdict = detect_automated(mail(subject, body))
    assert verdict is not None and verdict.kind == "auto_reply" and not verdict.certain


def test_a_person_mentioning_a_holiday_is_not_an_auto_reply() -> None:
    assert detect_automated(mail("Re: your reply", "I'm on holiday until Monday, but please delete my data.")) is None
    assert detect_automated(mail("Out of office?", "Is the FabLab closed next week? Then I'll come later.")) is None


def test_auto_submitted_no_is_a_person() -> None:
    assert detect_automated(mail("Automatic reply", "I am out of the office.", Auto_Submitted="no")) is None


def test_newsletter_with_list_headers_is_not_an_auto_reply() -> None:
    email = mail("Kunstenpunt Weekly", "Open calls. Unsubscribe | Update your preferences", Precedence="bulk",
                 List_Unsubscribe="<https://example.org/unsub>", List_Id="<weekly.example.org>")
    assert detect_automated(email) is None


def test_precedence_bulk_alone_is_not_enough() -> None:
    assert detect_automated(mail("Hello", "Please unsubscribe me.", Precedence="bulk")) is None


def test_ordinary_request_is_not_machine_traffic() -> None:
    assert detect_automated(mail("Delete my account", "Hi, please delete my account. Thanks, Lena")) is None
