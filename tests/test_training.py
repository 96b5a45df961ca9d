"""Training the classifier (issue 9): deterministic, served without scikit-learn, learning from
staff corrections, and `privacy-desk train` end to end on a real database.

Training runs on small subsets of the bundled sets so that this file stays well under a minute;
the full leave-one-set-out run is `bench/classify_eval.py`. Tests that train skip when
scikit-learn is absent (`pip install 'privacy-desk[train]'`).
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from bot.settings import calendar_from_env
from core.errors import TransitionError
from handlers.cases.actions import change_type
from handlers.cases.inventory import load_inventory
from handlers.classify import model_file, training
from handlers.classify.models_on_disk import BUNDLED_MODEL_FILE, trained_model_file
from handlers.classify.training_sets import BUNDLED_SETS, bundled_sets, correction_set
from storage.store import Store
from tests.conftest import FIXTURES, ROOT
from tests.support.factory import NOW, add_email, open_case

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(
    not HAVE_SKLEARN, reason="scikit-learn is not installed: pip install 'privacy-desk[train]'"
)
BOB = "UBOB0001"
MESSAGE_ID = "<unsubscribe-1@example.org>"
RAW = (
    b"From: Jan Peeters <jan.peeters@example.org>\r\nTo: privacy@imal.example\r\n"
    b"Subject: newsletter\r\nMessage-ID: " + MESSAGE_ID.encode() + b"\r\n"
    b"Date: Tue, 24 Nov 2026 20:14:03 +0100\r\n\r\n"
    b"I never signed up for these newsletters, please stop sending them and remove me.\r\n"
)


def small_sets() -> dict[str, list]:
    """A few of each author's emails: enough to train on, fast."""
    every = bundled_sets()
    return {
        "templates": every["templates"][:20],
        "inbox_a": every["inbox_a"][:30],
        "inbox_b": every["inbox_b"][:30],
    }


@pytest.fixture(scope="module")
def small_model() -> bytes:
    if not HAVE_SKLEARN:
        pytest.skip("scikit-learn is not installed: pip install 'privacy-desk[train]'")
    return training.train(small_sets(), C=10.0).data


# --- the bundled sets -------------------------------------------------------------------------------


def test_the_four_sets_are_bundled_with_their_labels() -> None:
    sets = bundled_sets()
    assert {n: len(s) for n, s in sets.items()} == {
        "templates": 60,
        "ours": 299,
        "inbox_a": 100,
        "inbox_b": 100,
    }
    for items in sets.values():
        assert all(i.raw and i.labels[0] == i.primary for i in items)
    assert (FIXTURES / "corpus" / "README.md").is_file()
    assert set(BUNDLED_SETS) == {"templates", "ours", "inbox_a", "inbox_b"}


def test_the_model_file_is_the_one_next_to_the_database_if_there_is_one(tmp_path: Path) -> None:
    db = tmp_path / "desk.sqlite3"
    assert model_file(db) == BUNDLED_MODEL_FILE
    trained_model_file(db).write_bytes(b"x")
    assert model_file(db) == tmp_path / "desk.sqlite3.model.json.gz"


# --- training ---------------------------------------------------------------------------------------


@needs_sklearn
def test_training_is_deterministic(small_model: bytes) -> None:
    again = training.train(small_sets(), C=10.0).data
    assert again == small_model  # byte for byte
    doc = json.loads(gzip.decompress(small_model))
    assert doc["format"] == "privacy-desk-linear/1" and doc["info"]["trained_on"]["inbox_a"] == 30


def test_the_exported_model_serves_without_scikit_learn_or_numpy(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if HAVE_SKLEARN:
        path = tmp_path / "model.json.gz"
        path.write_bytes(request.getfixturevalue("small_model"))
    else:
        path = BUNDLED_MODEL_FILE
    eml = tmp_path / "mail.eml"
    eml.write_bytes(RAW)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from core.vocabulary import KINDS\n"
        "from handlers.classify import classifier\n"
        "from handlers.classify.model import Model\n"
        "from handlers.mail_in.parsing import parse_email\n"
        f"model = classifier.use_model(Path({str(path)!r}))\n"
        "assert isinstance(model, Model)\n"
        f"result = classifier.classify(parse_email(Path({str(eml)!r}).read_bytes()))\n"
        "assert result.kind in KINDS and not result.automated, result\n"
        "assert result.reasons, result\n"
        "for heavy in ('sklearn', 'numpy', 'scipy'):\n"
        "    assert heavy not in sys.modules, heavy\n"
        "print(result.kind)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_without_scikit_learn_train_exits_2_naming_the_extra(tmp_path: Path) -> None:
    code = "import sys\nsys.modules['sklearn'] = None\nfrom bot.cli import main\nsys.exit(main(['train']))\n"
    env = {**os.environ, "DATABASE_PATH": str(tmp_path / "none.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'privacy-desk[train]'" in done.stderr


def test_a_model_worse_than_the_current_ones_stored_figures_is_refused(tmp_path: Path) -> None:
    current = tmp_path / "current.json.gz"
    doc = json.loads(gzip.decompress(BUNDLED_MODEL_FILE.read_bytes()))
    perfect = {"n": 60, "correct": 60, "requests": 60, "caught": 60, "reviewed": 0, "humans_as_machines": 0}
    doc["info"] = {"loso": {"templates": perfect}}
    current.write_bytes(gzip.compress(json.dumps(doc).encode(), mtime=0))
    worse = training.SetFigures(
        n=60, correct=50, requests=60, caught=60, typed=60, reviewed=0, humans_as_machines=0,
        wrong_unflagged=10, exact_labels=40,
    )  # fmt: skip
    new = training.Trained(b"", {}, {}, 0, 0.0)
    fold = training.HeldOut("templates", (), None, worse, {}, {}, 0, 0, 0.0)  # type: ignore[arg-type]
    ok, why = training.compare(new, [fold], current, {"templates": []})
    assert not ok and "0.833" in why and "1.000" in why
    as_good = dataclasses.replace(fold, figures=dataclasses.replace(worse, correct=60))
    assert training.compare(new, [as_good], current, {"templates": []})[0]


# --- staff corrections ------------------------------------------------------------------------------


async def _case_with_email(store: Store, message_id: str = MESSAGE_ID, raw: bytes = RAW) -> int:
    async with store.transaction(now=NOW) as tx:
        case = await open_case(tx, message_id, kind="other")
        await add_email(tx, message_id, case_id=case.id, raw=raw, kind="other", labels=["other"])
    return case.id


async def _change(store: Store, case_id: int, labels: list[str]) -> None:
    await change_type(
        store, case_id=case_id, actor=BOB, labels=labels, now=NOW,
        calendar=calendar_from_env({}), inventory=load_inventory(),
    )  # fmt: skip


async def test_changing_the_type_keeps_a_correction_of_the_opening_email(store: Store) -> None:
    case_id = await _case_with_email(store)
    await _change(store, case_id, ["objection", "erasure"])
    [c] = await store.corrections.all()
    assert (c.case_id, c.labels, c.actor, c.raw, c.primary) == (
        case_id, ("objection", "erasure"), BOB, RAW, "objection",
    )  # fmt: skip
    with pytest.raises(TransitionError):  # refused change: nothing recorded (same transaction)
        await _change(store, case_id, ["objection", "erasure"])
    await _change(store, case_id, ["erasure"])
    assert len(await store.corrections.of_case(case_id)) == 2
    [latest] = await store.corrections.all()  # one example per email: the last labels given
    assert latest.labels == ("erasure",)
    [item] = correction_set([latest])
    assert (item.raw, item.primary, item.labels) == (RAW, "erasure", ("erasure",))
    assert await store.corrections.delete_of_case(case_id) == 2  # what retention will do
    assert await store.corrections.all() == []


# --- privacy-desk train -----------------------------------------------------------------------------


def _train(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_PATH": str(db)}
    env.pop("LOG_LEVEL", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "train", "--sets", "templates,inbox_a", "--C", "10", *extra],
        cwd=db.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@needs_sklearn
async def test_privacy_desk_train_round_trip(tmp_path: Path, store: Store, small_model: bytes) -> None:
    case_id = await _case_with_email(store)
    await _change(store, case_id, ["objection"])
    db = store.path
    installed = trained_model_file(db)
    # the current model: a deliberately weak one (trained on 80 emails), which the new one must beat
    installed.write_bytes(small_model)

    done = _train(db)
    assert done.returncode == 0, done.stderr
    assert "training on templates (60), inbox_a (100), corrections (1); 1 staff correction(s)" in done.stdout
    assert "leave-one-set-out" in done.stdout and "primary accuracy per language" in done.stdout
    assert "confusion matrix" in done.stdout and "installed" in done.stdout
    assert installed.stat().st_mode & 0o777 == 0o600
    data = installed.read_bytes()
    assert data != small_model
    doc = json.loads(gzip.decompress(data))
    assert doc["info"]["trained_on"] == {"templates": 60, "inbox_a": 100, "corrections": 1}
    assert set(doc["info"]["loso"]) == {"templates", "inbox_a"}
    assert model_file(db) == installed

    # a second database, without that correction, whose current model is the one just installed
    other = tmp_path / "other" / "desk.sqlite3"
    other.parent.mkdir()
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(other)) as copy:
        source.backup(copy)  # committed rows may still be in the -wal file: copy through SQLite
    async with await Store.open(other) as second, second.transaction(now=NOW) as tx:
        await tx.corrections.delete_of_case(case_id)
    trained_model_file(other).write_bytes(data)
    again = _train(other)
    if again.returncode == 1:  # refused: says why, and the current model stays
        assert "NOT installed" in again.stderr and "leave-one-set-out on templates, inbox_a" in again.stderr
        assert trained_model_file(other).read_bytes() == data
    else:
        assert again.returncode == 0, again.stderr
        assert "installed" in again.stdout and trained_model_file(other).read_bytes() != data
    assert _train(other).returncode == again.returncode  # the same decision every time
