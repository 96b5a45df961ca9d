"""The request classifier (issue 3): targets on the labelled sets, the hard cases by name, speed.

The figures are computed exactly as `bench/classify_eval.py` prints them (`handlers.classifier_eval`).
`FLOORS` keeps them from falling: raise a floor when the classifier gets better, never lower it
to make a change pass.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.vocabulary import AUTOMATED_KINDS, KINDS, REQUEST_KINDS
from handlers.classify.classifier import Classification, classify, detect_language
from handlers.classify.evaluation import Evaluation, evaluate, load_labelled
from handlers.classify.rules import load_rules, prepare, word_index
from handlers.mail_in.parsing import parse_email
from tests.conftest import shared_path

LABELLED = Path(__file__).parent / "fixtures" / "labelled"
LANGUAGES = ("en", "fr", "nl", "de")
#: Issue 3's targets, on both sets.
TARGET_ACCURACY = 0.95
#: Regression floors: the figures measured when these tests were written, less a small margin.
FLOORS = {
    "fixtures": {"accuracy": 0.98, "exact_labels": 0.95, "language": 0.97},
    "templates": {"accuracy": 0.98, "exact_labels": 0.9, "language": 0.97},
}


def mail(subject: str, body: str, *, sender: str = "Ana Peeters <ana.peeters@example.org>",
         attachments: tuple[str, ...] = (), **headers: str) -> Classification:
    """Classify a plain-text message built from the arguments."""
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    for filename in attachments:
        m.add_attachment(b"%PDF-1.4 scanned letter", maintype="application", subtype="pdf", filename=filename)
    return classify(parse_email(m.as_bytes()))


def assert_targets(ev: Evaluation, floors: dict[str, float]) -> None:
    wrong = [f"{o.item.file}: {o.item.primary} -> {o.result.kind}" for o in ev.errors]
    assert ev.accuracy >= TARGET_ACCURACY, wrong
    assert not ev.requests_missed, [o.item.file for o in ev.requests_missed]
    assert not ev.humans_as_automated, [o.item.file for o in ev.humans_as_automated]
    assert ev.accuracy >= floors["accuracy"], wrong
    assert ev.exact_labels >= floors["exact_labels"]
    assert ev.language_accuracy >= floors["language"]


# ---------------------------------------------------------------------------------------------
# the labelled sets


@pytest.fixture(scope="module")
def fixtures_evaluation() -> Evaluation:
    return evaluate(load_labelled(LABELLED), name="fixtures")


def test_labelled_set_is_sound() -> None:
    """At least 150 emails we wrote, in four languages, every kind as primary in every language."""
    with (LABELLED / "labels.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 150
    on_disk = {str(p.relative_to(LABELLED)) for p in LABELLED.glob("*/*.eml")}
    assert on_disk == {r["file"] for r in rows}, "labels.csv and the .eml files disagree: run make_fixtures.py"
    per_language = Counter((r["primary"], r["language"]) for r in rows)
    for kind in (*KINDS, *AUTOMATED_KINDS):
        for lang in LANGUAGES:
            assert per_language[(kind, lang)] >= 1, (kind, lang)
    assert sum(per_language[("other", lang)] for lang in LANGUAGES) >= 30
    for row in rows:
        labels = row["labels"].split("|")
        assert labels[0] == row["primary"] and set(labels) <= {*KINDS, *AUTOMATED_KINDS}
        assert row["file"].startswith(f"{row['language']}/{row['language']}-")


def test_fixtures_meet_the_targets(fixtures_evaluation: Evaluation) -> None:
    assert_targets(fixtures_evaluation, FLOORS["fixtures"])


def test_no_wrong_kind_goes_unflagged(fixtures_evaluation: Evaluation) -> None:
    """When the classifier is wrong, it should at least have asked staff to confirm."""
    assert len(fixtures_evaluation.wrong_without_review) <= 2


@pytest.mark.shared
def test_templates_meet_the_targets() -> None:
    folder = shared_path("corpus", "templates")
    assert_targets(evaluate(load_labelled(folder), name="templates"), FLOORS["templates"])


def test_classification_is_fast(fixtures_evaluation: Evaluation) -> None:
    times = [o.classify_ms for o in fixtures_evaluation.outcomes]
    assert sum(times) / len(times) < 20
    assert max(times) < 100  # generous: a loaded CI machine, a cold cache


@pytest.mark.shared
def test_wild_corpus_never_raises_and_stays_fast() -> None:
    """All 768 messages of ../shared/corpus/wild/: classify never raises, well-formed answers, fast."""
    folder = shared_path("corpus", "wild")
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    assert len(files) >= 768
    times = []  # CPU time of this thread: what the classifier costs, not how busy the machine is
    for path in files:
        email = parse_email(path.read_bytes())
        t0 = time.thread_time()
        result = classify(email)
        times.append(time.thread_time() - t0)
        assert result.kind in (*KINDS, *AUTOMATED_KINDS) and result.labels[0] == result.kind, path
        assert result.automated == (result.kind in AUTOMATED_KINDS)
        assert 0.0 <= result.confidence <= 1.0
        assert all(len(r) <= 120 and "@" not in r for r in result.reasons), (path, result.reasons)
    assert sum(times) / len(times) < 0.020
    assert max(times) < 0.200


# ---------------------------------------------------------------------------------------------
# the calls a privacy officer makes


def test_copy_then_delete_is_access_and_erasure() -> None:
    result = mail("my data", "Hello,\n\nplease send me a copy of my data and then delete everything.\n\nNina")
    assert result.kind == "access" and result.labels == ("access", "erasure")


def test_misleading_unsubscribe_subject_over_an_access_question() -> None:
    result = mail("Unsubscribe", "Where did you get my email address? I never signed up. What else do you have on me?")
    assert result.kind == "access" and "objection" not in result.labels


def test_request_on_behalf_of_a_child_or_a_client_is_a_request() -> None:
    assert mail("Photos of my daughter", "I am her mother. Please erase her data and the photos of her.").kind == \
        "erasure"
    lawyer = ("We act for Ms Rossi. On behalf of our client and pursuant to Article 15 GDPR we request a copy of "
              "her data.")
    assert mail("Our client", lawyer).kind == "access"


def test_photo_used_for_promotion_is_an_objection() -> None:
    result = mail("My picture", "I'm fine with it in your archive, but please stop using my photo for promotion.")
    assert result.kind == "objection" and "erasure" not in result.labels


def test_freeze_while_checking_is_a_restriction() -> None:
    result = mail("Incident", "That is not true. Until this has been checked, please do not use my data, keep it "
                              "frozen.")
    assert result.kind == "restriction"


def test_do_not_delete_but_stop_using_is_a_restriction_not_an_erasure() -> None:
    result = mail("Please don't delete my records yet",
                  "Please do NOT delete my data yet, I need it for my insurance claim. Stop using it until then.")
    assert result.kind == "restriction" and "erasure" not in result.labels
    assert any("negated" in r for r in result.reasons)


def test_machine_readable_or_to_another_organisation_is_portability() -> None:
    assert mail("Export", "Could you export my booking history in a machine-readable format?").kind == "portability"
    assert mail("Moving", "Please send my member data directly to FabLab Leuven, I am moving there.").kind == \
        "portability"


def test_grievance_with_erasure_is_a_complaint_that_keeps_the_erasure_label() -> None:
    result = mail("Video", "You published a video of me without my consent. This is a violation of my privacy. "
                           "Delete it immediately.")
    assert result.kind == "complaint" and result.labels == ("complaint", "erasure")


def test_announced_complaint_to_the_authority_is_a_complaint() -> None:
    assert mail("Complaint", "I will complain to the data protection authority about your newsletter.").kind == \
        "complaint"
    assert mail("Plainte", "Vous avez partagé mes coordonnées sans mon consentement. Je vais déposer une plainte "
                           "auprès de l'Autorité de protection des données.").kind == "complaint"


def test_unanswered_request_is_a_complaint_about_that_request() -> None:
    result = mail("Still no answer", "I asked you on 2 May to delete my account. I have had no reply at all and I am "
                                     "still getting your mails. This is not OK.")
    assert result.kind == "complaint" and "erasure" in result.labels
    assert any("earlier request" in r for r in result.reasons)


def test_conditional_complaint_boilerplate_is_not_a_complaint() -> None:
    """"I reserve the right to lodge a complaint" closes almost every formal request (corpus README)."""
    body = ("I hereby request erasure of all my personal data according to Article 17 GDPR. If you do not answer "
            "within one month, I reserve the right to lodge a complaint with the supervisory authority.")
    result = mail("Erasure request", body)
    assert result.kind == "erasure" and "complaint" not in result.labels
    threat = mail("STOP", "stop sending me your marketing emails or I'll report you to the data protection authority!!")
    assert threat.kind == "objection" and "complaint" not in threat.labels


def test_art_19_inform_recipients_is_not_access() -> None:
    body = ("I request rectification of my address under Article 16 GDPR. You have to communicate the rectification "
            "to each recipient as laid down in Article 19 GDPR. Please also inform me about those recipients.")
    result = mail("Rectification", body)
    assert result.labels == ("rectification",)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Invoice INV-0342", "Please find attached our invoice.\n\nKind regards,\nAccounts\n\nThis e-mail is "
         "confidential and intended solely for the addressee. If you received this e-mail in error, please delete it."),
        ("Cancel my tickets", "I can't make it to the opening on Friday - please cancel my two tickets."),
        ("Interview request", "Could I interview the curator about the exhibition on how personal data is sold?"),
        ("Wheelchair", "Do you have wheelchair access to the first floor?"),
        ("Noise", "I want to complain about the noise of your concert last Saturday."),
        ("Mailbox full", "Your mailbox is full. Your account will be deleted in 24 hours unless you verify it here."),
    ],
)
def test_everyday_mail_is_other(subject: str, body: str) -> None:
    assert mail(subject, body).kind == "other"


def test_files_on_a_fablab_computer_are_not_personal_data() -> None:
    result = mail("files on computer 3", "I left some files on FabLab computer 3. Could someone please delete them?")
    assert result.kind == "other" and result.needs_review
    assert any("files" in r for r in result.reasons)


def test_unsubscribing_from_a_workshop_is_not_an_objection() -> None:
    assert mail("Workshop", "Pouvez-vous me désinscrire de l'atelier du 12 avril ? Je suis malade.").kind == "other"


def test_vendor_pitch_full_of_request_words_is_other() -> None:
    result = mail("GDPR requests?", "Are you still handling access and deletion requests by hand? Our platform "
                                    "automates it. Book a demo!")
    assert result.kind == "other"
    pitch = mail("Demo", "Do you want to delete your data requests backlog? Our platform automates it: we delete "
                         "all the data you ask for. Book a free demo, save 20 hours a month.")
    assert pitch.kind == "other" and pitch.needs_review and any("sales pitch" in r for r in pitch.reasons)


def test_withdrawing_an_earlier_request_is_not_a_new_request() -> None:
    result = mail("Re: delete my account", "Please ignore my earlier request to delete my account, I'm staying.")
    assert result.kind == "other" and result.withdrawal and result.needs_review
    assert result.reasons[0].startswith("withdrawal: ")


def test_quoted_history_and_signature_do_not_count() -> None:
    reply = ("Thanks, received!\n\nOn Mon, 3 Mar 2025, IMAL <privacy@imal.example> wrote:\n"
             "> We registered your request.\n> > Please delete all my data.\n")
    assert mail("Re: Request to delete my data", reply).kind == "other"
    signed = ("Please send me a copy of my data.\n\nBest regards,\nJo\nDelete Culture Collective\n\n"
              "If you received this message in error, please delete it and notify the sender.")
    assert mail("copy", signed).labels == ("access",)


def test_auto_reply_with_a_request_subject_is_machine_traffic() -> None:
    result = mail("Automatic reply: Delete my data", "I am out of the office until 14 April.",
                  Auto_Submitted="auto-replied")
    assert result.kind == "auto_reply" and result.automated and result.labels == ("auto_reply",)


def test_a_person_is_never_taken_for_a_machine_on_wording_alone() -> None:
    result = mail("Out of office?", "I'm away until Monday, but please delete my account before then.")
    assert not result.automated and result.kind == "erasure"


def test_web_form_relay_marked_auto_generated_is_read_before_it_is_dropped() -> None:
    body = "Contact form\n\nMessage: Under Article 17 GDPR please delete my account and all my personal data."
    result = mail("Website contact form", body, Auto_Submitted="auto-generated")
    assert result.kind == "erasure" and not result.automated and result.needs_review


# ---------------------------------------------------------------------------------------------
# saying when unsure


def test_three_word_request_is_typed_as_a_request() -> None:
    result = mail("données", "mes données svp")
    assert result.kind == "access"


def test_clear_request_is_not_flagged() -> None:
    result = mail("Subject access request", "Under Article 15 GDPR I request a copy of all personal data you hold "
                                            "about me.")
    assert result.kind == "access" and not result.needs_review and result.confidence >= 0.9


def test_privacy_words_without_a_recognised_request_are_never_filed_silently() -> None:
    result = mail("question", "Hello, I have a question about the GDPR and my membership at the FabLab.")
    assert result.kind != "other" or result.needs_review


def test_an_attachment_with_almost_no_text_is_flagged() -> None:
    result = mail("letter", "see attachment", attachments=("scan.pdf",))
    assert result.kind == "other" and result.needs_review


def test_unreadable_message_is_flagged() -> None:
    result = classify(parse_email(b"\x00\x01\x02 not an email \xff\xfe"))
    assert result.kind == "other" and result.needs_review


# ---------------------------------------------------------------------------------------------
# output


def test_output_is_the_interface_contract() -> None:
    result = mail("Delete my account", "Hi, please delete my account and all the data linked to it. Thanks, Lena")
    data = result.as_dict()
    assert set(data) == {"kind", "labels", "confidence", "language", "automated", "review", "reasons"}
    assert data["kind"] == "erasure" and data["labels"] == ["erasure"] and data["language"] == "en"
    assert data["automated"] is False and 0 <= data["confidence"] <= 1  # type: ignore[operator]
    assert Classification.from_dict(data).kind == "erasure"


def test_reasons_quote_the_sender_and_never_an_address() -> None:
    result = mail("Delete me", "Please delete my account jo.bloggs@example.org and everything about me.")
    assert result.reasons and all(len(r) <= 120 and "@" not in r for r in result.reasons)
    assert result.reasons[0].startswith("erasure: “") and "delete my account" in result.reasons[0]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Please delete my data, thanks", "en"),
        ("Merci de supprimer mes données", "fr"),
        ("Graag mijn gegevens verwijderen, bedankt", "nl"),
        ("Bitte löschen Sie meine Daten, danke", "de"),
        ("12345 !!!", "und"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_every_kind_and_label_is_known() -> None:
    for text in ("delete me pls", "unsubscribe", "hello"):
        result = mail("", text)
        assert result.kind in KINDS and set(result.labels) <= set(REQUEST_KINDS) | {"complaint", "other"}


# ---------------------------------------------------------------------------------------------
# the rule file


def test_a_broken_rule_names_itself() -> None:
    with pytest.raises(ValueError, match=r"erasure\.en\.0"):
        load_rules("[erasure]\nen = [[2.0, '''(unclosed''']]\n[negation]\nbefore=[]\ninside=[]\nafter=[]\n"
                   "scope_break=[]\nconditional=[]\n")


def test_word_start_matching_finds_exactly_what_the_plain_regex_finds() -> None:
    """The speed-ups (leading `\\b` dropped, matching only where an anchor word starts) change nothing."""
    import re

    rules = load_rules()
    sources = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(LABELLED.glob("*.py"))]
    sources += [p.read_bytes().decode("utf-8", "replace") for p in sorted(LABELLED.glob("*/*.eml"))[::5]]
    sources.append("I\n\nobject. u\tkunt\nzich. à\u2028la main. e-mail\x1caddress. (subject access request)")
    texts = [prepare(text) for text in sources]
    patterns = [r.pattern for r in rules.rules] + list(rules.families.values()) + list(rules.contexts.values())
    for text in texts:
        index = word_index(text)
        for pattern in patterns:
            expected = [m.span() for m in re.finditer(pattern.source, text)]
            assert [m.span() for m in pattern.finditer(text, index)] == expected, pattern.source[:80]
            assert [m.span() for m in pattern.finditer(text)] == expected
