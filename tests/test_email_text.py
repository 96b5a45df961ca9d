"""Reply splitting and HTML to text: what the sender wrote now, apart from history and signature."""

from __future__ import annotations

import pytest

from handlers.mail_in.body_text import html_to_text, split_reply

# ---------------------------------------------------------------------------------------------
# quoted history


@pytest.mark.parametrize(
    "attribution",
    [
        "On Mon, 3 Mar 2025 at 10:02, IMAL Privacy <privacy@imal.example> wrote:",
        "Le lun. 3 mars 2025 à 10:02, IMAL Privacy <privacy@imal.example> a écrit :",
        "Op ma 3 mrt. 2025 om 10:02 schreef IMAL Privacy <privacy@imal.example>:",
        "Am Mo., 3. März 2025 um 10:02 Uhr schrieb IMAL Privacy <privacy@imal.example>:",
    ],
)
def test_top_posted_reply_in_four_languages(attribution: str) -> None:
    parts = split_reply(f"Please delete my account.\n\n{attribution}\n> Dear member,\n> our newsletter…\n")
    assert parts.new_text == "Please delete my account."
    assert parts.quoted.startswith(attribution[:10]) and "our newsletter" in parts.quoted
    assert not parts.forwarded


def test_attribution_wrapped_over_two_lines_belongs_to_the_quote() -> None:
    text = "Top text\n\nOn Mon, 3 Jun 2024 at 10:02, Jane Doe <\njane@example.org> wrote:\n> q1\n> q2\n"
    parts = split_reply(text)
    assert parts.new_text == "Top text"
    assert "jane@example.org> wrote:" in parts.quoted


def test_bottom_posted_reply_keeps_the_new_text_below_the_quote() -> None:
    text = "Le lun. 3 mars 2025 à 10:02, IMAL <privacy@imal.example> a écrit :\n> La lettre d'IMAL\n\n" \
           "Merci de supprimer mes données"
    parts = split_reply(text)
    assert parts.new_text == "Merci de supprimer mes données"
    assert "La lettre d'IMAL" in parts.quoted


def test_inline_answers_between_quotes_are_new_text() -> None:
    text = "> Do you want us to delete your photos too?\nYes, all of them.\n> And your account?\nKeep it."
    parts = split_reply(text)
    assert parts.new_text == "Yes, all of them.\nKeep it."
    assert parts.quoted.count(">") == 2


def test_unquoted_history_after_an_outlook_header_block() -> None:
    text = (
        "Ik wil geen mails meer ontvangen.\n\n________________________________\n"
        "Van: IMAL <news@imal.example>\nVerzonden: maandag 3 maart 2025 10:02\nAan: Hilde\n"
        "Onderwerp: IMAL nieuwsbrief\n\nUitschrijven? Klik hier."
    )
    parts = split_reply(text)
    assert parts.new_text == "Ik wil geen mails meer ontvangen."
    assert "Uitschrijven" in parts.quoted and not parts.forwarded


@pytest.mark.parametrize(
    "separator",
    ["---------- Forwarded message ---------", "-------- Message transféré --------",
     "---------- Doorgestuurd bericht ---------", "-------- Weitergeleitete Nachricht --------"],
)
def test_forwarded_message_is_history_and_flagged(separator: str) -> None:
    parts = split_reply(f"FYI, came in at the front desk.\n\n{separator}\nFrom: Bob\n\nPlease delete my data.")
    assert parts.new_text == "FYI, came in at the front desk."
    assert parts.forwarded and "Please delete my data." in parts.quoted


def test_original_message_separator_is_history_not_a_forward() -> None:
    parts = split_reply("Thanks!\n\n-----Original Message-----\nFrom: IMAL\nSent: Monday\n\nOld text")
    assert parts.new_text == "Thanks!" and not parts.forwarded


# ---------------------------------------------------------------------------------------------
# signatures and disclaimers


def test_signature_delimiter_and_mobile_signature() -> None:
    parts = split_reply("Delete me.\n-- \nJo Bloggs\nDelete Culture Collective")
    assert parts.new_text == "Delete me." and "Jo Bloggs" in parts.signature
    parts = split_reply("Bitte löschen Sie meine Daten.\n\nVon meinem iPhone gesendet")
    assert parts.new_text == "Bitte löschen Sie meine Daten."
    assert parts.signature == "Von meinem iPhone gesendet"


def test_legal_disclaimer_that_says_delete_goes_to_the_signature() -> None:
    text = (
        "Hello,\n\nplease send me a copy of my data.\n\nBest regards,\nOliver Grant\n+32 2 555 01 23\n\n"
        "This e-mail and any attachments are confidential and intended solely for the addressee. If you\n"
        "have received this message in error, please notify the sender and delete it from your system."
    )
    parts = split_reply(text)
    assert parts.new_text == "Hello,\n\nplease send me a copy of my data."
    assert "delete it from your system" in parts.signature


def test_sign_off_followed_by_a_postscript_is_kept() -> None:
    parts = split_reply("Hi,\n\nplease delete my data.\n\nThanks\nJo\n\nPS: and my photos too")
    assert "PS: and my photos too" in parts.new_text


def test_thanks_as_first_line_is_not_a_signature() -> None:
    assert split_reply("Thanks!\nPlease also delete my photos.").new_text == "Thanks!\nPlease also delete my photos."


def test_a_later_sign_off_is_found_when_the_first_one_is_not_the_end() -> None:
    text = "Hi,\nthanks\nplease delete everything I ever sent you, and my account.\nThanks\nJo"
    parts = split_reply(text)
    assert parts.new_text.endswith("and my account.") and parts.signature == "Thanks\nJo"


# ---------------------------------------------------------------------------------------------
# HTML


def test_html_blockquote_and_gmail_quote_become_quoted_lines() -> None:
    html = (
        "<div>Please unsubscribe me.</div><div class=\"gmail_quote\"><div>On Mon, IMAL wrote:</div>"
        "<blockquote><p>Our newsletter</p></blockquote></div>"
    )
    text = html_to_text(html)
    assert text.splitlines()[0] == "Please unsubscribe me."
    assert all(line.startswith(">") for line in text.splitlines()[1:] if line.strip())
    assert split_reply(text).new_text == "Please unsubscribe me."


def test_outlook_html_reply_history_after_the_marker_is_quoted() -> None:
    """Outlook puts the earlier message after `divRplyFwdMsg`, outside it: it is history too."""
    html = (
        "<html><body><div>Please delete my account.</div><div id=\"appendonsend\"></div><hr>"
        "<div id=\"divRplyFwdMsg\"><b>From:</b> IMAL &lt;news@imal.example&gt;<br><b>Sent:</b> Monday<br>"
        "<b>To:</b> Jo<br><b>Subject:</b> Newsletter</div>"
        "<div>Open FabLab evenings are back. To unsubscribe click here.</div></body></html>"
    )
    parts = split_reply(html_to_text(html))
    assert parts.new_text == "Please delete my account."
    assert "unsubscribe" in parts.quoted


def test_html_forward_is_flagged_as_forwarded() -> None:
    html = (
        '<div dir="ltr">fyi, see below</div><div class="gmail_quote"><div class="gmail_attr">'
        "---------- Forwarded message ---------<br>From: Bob &lt;bob@example.net&gt;<br>Subject: delete<br>"
        "</div><div>Please delete all my data.</div></div>"
    )
    parts = split_reply(html_to_text(html))
    assert parts.new_text == "fyi, see below"
    assert parts.forwarded and "Please delete all my data." in parts.quoted


def test_html_to_text_drops_scripts_and_keeps_structure() -> None:
    html = "<head><title>x</title><style>p{}</style></head><script>alert(1)</script><p>A</p><ul><li>B</li></ul>"
    assert html_to_text(html) == "A\n\n- B"


def test_html_to_text_never_raises_on_garbage() -> None:
    assert isinstance(html_to_text("<div><<<</p></div></span><![CDATA[ x"), str)
