"""The reader's worker process (bot/reader.py): it reads a batch as the bot's own process would,
and it stops when released."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bot.reader import MailReader
from handlers.cases.reading import read_all
from tests.conftest import FIXTURES, ROOT


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


def test_a_worker_spawned_from_the_installed_script_does_not_import_the_script_again(
    tmp_path: Path,
) -> None:
    """Run as a script (like the `privacy-desk` console script), the bot's `__main__` would be
    imported again in the spawned worker, with the whole command line; the reader names it
    `bot.__main__`, which spawn leaves alone."""
    script = tmp_path / "privacy-desk"
    script.write_text(
        "import json, sys\n"
        "from multiprocessing import spawn\n"
        "from bot.reader import _main_as_a_package_main\n"
        "before = spawn.get_preparation_data('worker')\n"
        "_main_as_a_package_main()\n"
        "after = spawn.get_preparation_data('worker')\n"
        "print(json.dumps([before.get('init_main_from_path'), after.get('init_main_from_name'),"
        " after.get('init_main_from_path')]))\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    before_path, after_name, after_path = json.loads(done.stdout)
    assert before_path == str(script)  # spawn would have imported the script
    assert (after_name, after_path) == ("bot.__main__", None)  # which it skips
