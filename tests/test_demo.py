"""`privacy-desk demo`, run as a newcomer runs it: a subprocess with an empty environment (only
PATH, PYTHONPATH and HOME), from an empty folder, and without network where the machine allows
it (`unshare -rn`: a user and network namespace with no interface but loopback, which is down).

The whole text output is compared with the golden file `tests/fixtures/demo/demo.txt`. After a
deliberate change to what the demo shows — or to any message the bot renders — regenerate it with

    PRIVACY_DESK_REGENERATE_DEMO=1 .venv/bin/pytest tests/test_demo.py

and read the diff before committing it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.vocabulary import KIND_LABELS, KINDS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "demo" / "demo.txt"
REFERENCES = [f"PRIV-2026-{n:04d}" for n in range(1, 11)]


@functools.cache
def _offline_prefix() -> tuple[str, ...]:
    """`unshare -rn` when it works here (it needs user namespaces), else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        done = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (unshare, "-rn") if done.returncode == 0 else ()


def demo(
    cwd: Path, *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), "HOME": str(cwd)}
    env.update(extra_env or {})
    return subprocess.run(
        [*_offline_prefix(), sys.executable, "-m", "bot", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's output, run once for the module, from an empty folder it must leave empty."""
    cwd = tmp_path_factory.mktemp("demo-cwd")
    done = demo(cwd)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stderr == b"", "the demo logs nothing on a normal run"
    assert list(cwd.iterdir()) == [], "the demo leaves no file in its working folder"
    return done.stdout.decode("utf-8")


def test_every_sample_case_is_rendered(output: str) -> None:
    assert output.startswith("Privacy Desk demo: 12 sample emails through the real pipeline")
    for ref in REFERENCES:
        assert f"Case {int(ref[-4:])} of 10: {ref}" in output
        assert f"│ {ref} · " in output  # its root message
    for kind in KINDS:
        assert f"Classified as {KIND_LABELS[kind]}" in output
    flat = " ".join(output.split())  # across line wrapping
    assert "Automatic reply, recognised by Auto-Submitted: auto-replied" in flat
    assert "↳ reply in the thread of PRIV-2026-0003" in output and "Follow-up email · received" in output
    for language in ("en", "fr", "nl", "de"):
        assert f"Content-Language: {language}" in output  # an acknowledgement in each language
    for scheduled in ("is due in 7 days", "is due today", "is overdue", "has had no one assigned"):
        assert scheduled in output
    assert "Privacy requests · " in output and "Weekly privacy summary · week of" in output


def test_output_shows_nothing_of_the_machine_or_the_moment(output: str) -> None:
    assert "privacy-desk-demo-" not in output and "/tmp" not in output  # no temporary path
    # acknowledgements get a random Message-ID in our domain: it is never shown
    assert not re.search(r"<[^<>\s]+@imal\.example>", output)


def test_output_is_the_golden_file(output: str) -> None:
    if os.environ.get("PRIVACY_DESK_REGENERATE_DEMO"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(output, encoding="utf-8")
    assert GOLDEN.is_file(), f"no golden file: run with PRIVACY_DESK_REGENERATE_DEMO=1 to write {GOLDEN}"
    assert output == GOLDEN.read_text(encoding="utf-8")


def test_the_environment_changes_nothing(output: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LOG_LEVEL=DEBUG\nTIMEZONE=America/New_York\n", encoding="utf-8")
    settings = {
        "TZ": "Pacific/Auckland",
        "LANG": "fr_BE.ISO-8859-1",
        "LC_ALL": "C",
        "PYTHONIOENCODING": "latin-1",
        "PYTHONHASHSEED": "4242",
        "COLUMNS": "40",
        "SLACK_BOT_TOKEN": "xoxb-not-a-token",
        "DATABASE_PATH": str(tmp_path / "desk.sqlite3"),
        "TIMEZONE": "Asia/Tokyo",
        "HOLIDAYS_COUNTRY": "FR",
        "REMINDER_HOUR": "13",
        "TEMPLATES_DIR": str(tmp_path / "nowhere"),
        "PRIVACY_DESK_FAKE_NOW": "2031-01-01T08:00:00",
    }
    done = demo(tmp_path, extra_env=settings)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.decode("utf-8") == output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_html_page(tmp_path: Path) -> None:
    done = demo(tmp_path, "--html", "demo.html")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    page = (tmp_path / "demo.html").read_text(encoding="utf-8")
    assert "demo.html" in done.stdout.decode("utf-8")  # says where it wrote the page
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.html"]
    assert page.startswith("<!DOCTYPE html>")
    for ref in REFERENCES:
        assert ref in page
    assert "<script" not in page.lower()
    assert not re.search(r"(?:https?:)?//[a-z0-9]", page, re.IGNORECASE), "no external URL or resource"
    assert "url(" not in page and "@import" not in page and " src=" not in page
    assert '<button type="button" class="btn primary">Claim</button>' in page
    assert "# privacy-requests" in page and "Privacy Desk" in page


def test_html_page_that_cannot_be_written(tmp_path: Path) -> None:
    done = demo(tmp_path, "--html", str(tmp_path / "missing" / "demo.html"))
    assert done.returncode == 1
    assert b"cannot write" in done.stderr
