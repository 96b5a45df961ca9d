"""The reader's worker process (bot/reader.py): it reads a batch as the bot's own process would,
and it stops when released."""

from __future__ import annotations

from bot.reader import MailReader
from handlers.cases.reading import read_all
from tests.conftest import FIXTURES


def test_a_batch_read_in_the_worker_is_what_reading_it_here_gives() -> None:
    raws = [p.read_bytes() for p in sorted((FIXTURES / "emails").glob("*.eml"))[:12]]
    assert len(raws) >= 5
    reader = MailReader(authserv_id="mx.imal.example", own_domain="imal.example")
    try:
        there = reader.submit(raws).result(timeout=60)
        assert reader.running and reader.started == 1
        assert there == read_all(raws, "mx.imal.example", "imal.example")
        assert [r.kept(raw) for r, raw in zip(there, raws, strict=True)] == [
            r.kept(raw)
            for r, raw in zip(read_all(raws, "mx.imal.example", "imal.example"), raws, strict=True)
        ]
    finally:
        reader.release()
    assert not reader.running
    again = reader.submit(raws[:2]).result(timeout=60)  # a new worker for the next backlog
    assert reader.started == 2 and len(again) == 2
    reader.release()
