"""The acknowledgement each requester receives (headers, decoded; text), in the four languages
and the bilingual fallback: the real intake (parse, classify, deadline, store in a temporary SQLite
file, acknowledge) and the real composer, no network.

    .venv/bin/python bench/acknowledgement_samples.py [OUT]   (default bench/results/acknowledgements.txt)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.cases.acknowledgement import Acknowledgements
from handlers.cases.deadlines import Calendar
from handlers.cases.intake import IncomingMessage, IntakeRules, take_in
from handlers.mail_out.compose import build_message
from handlers.mail_out.letters import Writer
from handlers.mail_out.templates import Templates
from storage.store import Store

MAIL_FROM = "privacy@imal.example"
SAMPLES = [
    ("Chloé Dubois <chloe.dubois@example.org>", "Suppression",
     "Bonjour, je voudrais que vous supprimiez toutes mes données personnelles. Merci, Chloé Dubois"),
    ("Pieter Jacobs <pieter.jacobs@example.be>", "Inzage",
     "Beste, graag ontvang ik een kopie van alle persoonsgegevens die jullie over mij bewaren. Pieter"),
    ("Jonas Weber <jonas.weber@example.net>", "Auskunft",
     "Guten Tag, bitte teilen Sie mir mit, welche personenbezogenen Daten Sie über mich speichern. Jonas Weber"),
    ("Grace Adeyemi <grace.adeyemi@example.com>", "My data",
     "Hi, please correct my surname in your records: it is Adeyemi, not Adeyemy. Thanks, Grace"),
    ("Ana Lopez <ana.lopez@example.org>", "question", "GDPR"),
]  # fmt: skip


async def main(out: Path) -> None:
    now = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    writer = Writer(Templates.load(), country="BE", mail_from=MAIL_FROM)
    rules = IntakeRules(mail_from=MAIL_FROM, acknowledgements=Acknowledgements(writer))
    calendar = Calendar()
    parts = []
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "samples.sqlite3", clock=lambda: now)
        try:
            async with store.transaction() as tx:
                await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
            for uid, (sender, subject, body) in enumerate(SAMPLES, start=1):
                m = EmailMessage()
                m["From"], m["To"], m["Subject"] = sender, MAIL_FROM, subject
                m["Message-ID"] = make_msgid(domain="example.org")
                m.set_content(body)
                outcome = await take_in(
                    store,
                    IncomingMessage(m.as_bytes(), "INBOX", 1, uid, now),
                    calendar=calendar,
                    rules=rules,
                    now=now,
                )
                case = await store.cases.by_ref(outcome.case_ref or "")
                assert case is not None
                [outbound] = await store.mail.outbound_of_case(case.id)
                message = build_message(
                    outbound, mail_from=MAIL_FROM, case_ref=case.ref, to_name=case.requester_name
                )
                headers = "".join(f"{k}: {v}\n" for k, v in message.items())
                parts.append(f"===== {case.ref} · {case.kind}{' (review)' if case.needs_review else ''} "
                             f"· language {case.language} =====\n{headers}\n{message.get_content()}")  # fmt: skip
        finally:
            await store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"{len(parts)} acknowledgements written to {out}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results/acknowledgements.txt")))
