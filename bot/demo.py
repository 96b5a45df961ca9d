"""`privacy-desk demo [--html FILE]`: see the bot work, with no credentials, settings or network.

The sample emails bundled in `handlers/demo/samples` go through the real pipeline on a SQLite
database in a temporary folder (removed afterwards), and what the bot would post and send is
printed — or, with `--html FILE`, written as a page that looks like the Slack channel. The
environment is not read: the output is the same everywhere, every time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

from handlers.demo.html import transcript_html
from handlers.demo.simulation import demo_transcript
from handlers.demo.text import transcript_text
from handlers.demo.transcript import Posted

__all__ = ["run_demo"]


def _write(text: str) -> None:
    """Print as UTF-8 whatever the locale says (the output must not depend on the environment).
    A reader that stops early (`| head`) is not an error."""
    stream = getattr(sys.stdout, "buffer", None)
    try:
        if stream is None:  # replaced by a text-only stream (a test's capture)
            sys.stdout.write(text)
        else:
            sys.stdout.flush()
            stream.write(text.encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:
        # nobody reads the rest; point stdout at /dev/null so that the exit's flush is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_demo(*, html: Path | None = None) -> int:
    """Run the demo; print it, or write it as a page to `html` and say where. Returns the exit
    status (1 when the page cannot be written)."""
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # the intake's INFO lines would interleave with the story
    try:
        with tempfile.TemporaryDirectory(prefix="privacy-desk-demo-") as folder:
            transcript = asyncio.run(demo_transcript(Path(folder) / "demo.sqlite3"))
    finally:
        logging.disable(previous)
    if html is None:
        _write(transcript_text(transcript))
        return 0
    try:
        html.write_text(transcript_html(transcript), encoding="utf-8")
    except OSError as e:
        print(f"privacy-desk: cannot write {html}: {e.strerror or e}", file=sys.stderr)
        return 1
    posted = [e for e in transcript.entries if isinstance(e, Posted)]
    cases = sum(1 for p in posted if p.event_type == "privacy_case" and not p.edited)
    messages = len(posted)
    _write(f"{transcript.title}\nWritten as a web page ({cases} cases, {messages} Slack messages): {html}\n")
    return 0
