"""The labelled sets the classifier is trained and judged on, as bundled in the repository.

    sets = bundled_sets()                       # {"templates": [...], "ours": [...], ...}
    sets["corrections"] = correction_set(await store.corrections.all())

Four sets, each written by a different author (`tests/fixtures/corpus/README.md`):

| name | folder (under `tests/fixtures/`) | emails |
|---|---|---|
| `templates` | `corpus/templates/` (`<lang>/<id>.eml`) | 60 formal request letters from open templates |
| `ours` | `labelled/` (`<lang>/<id>.eml`) | our own 299 |
| `inbox_a` | `corpus/inbox_a/` (`emails/a<nnn>.eml`) | 100 everyday mails |
| `inbox_b` | `corpus/inbox_b/` (`emails/b<nnn>.eml`) | 100 longer, harder mails |

Each folder has a `labels.csv` (columns `file`, `language`, `primary`, `labels` — `|`-separated,
primary first — and notes), read as `handlers.classify.evaluation.load_labelled` reads it. An item
is a `LabelledEmail`: its raw bytes, language, primary kind and labels.

The sets live in the repository, not in the installed package: training needs a checkout (or
their folder given explicitly).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from handlers.classify.evaluation import ALL_KINDS, LabelledEmail, load_labelled
from storage.corrections import Correction

__all__ = [
    "BUNDLED_SETS",
    "DEFAULT_ROOT",
    "bundled_sets",
    "correction_set",
    "load_set",
]

#: `tests/fixtures/` of the checkout this module runs from (absent in an installed package).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "tests" / "fixtures"

#: name -> (folder under the root, sub-folder of the .eml files named in labels.csv)
BUNDLED_SETS: dict[str, tuple[str, str]] = {
    "templates": ("corpus/templates", ""),
    "ours": ("labelled", ""),
    "inbox_a": ("corpus/inbox_a", "emails"),
    "inbox_b": ("corpus/inbox_b", "emails"),
}


#: One labelled set (the evaluation's reader: `folder/labels.csv`, the files under `folder/emails`).
load_set = load_labelled


def bundled_sets(root: Path | str | None = None) -> dict[str, list[LabelledEmail]]:
    """The four bundled sets under `root` (default: this checkout's `tests/fixtures/`), by name.
    Raises FileNotFoundError naming the folder when one is missing."""
    base = Path(root) if root is not None else DEFAULT_ROOT
    out: dict[str, list[LabelledEmail]] = {}
    for name, (folder, emails) in BUNDLED_SETS.items():
        path = base / folder
        if not (path / "labels.csv").is_file():
            raise FileNotFoundError(f"labelled set {name!r} not found: {path / 'labels.csv'} is missing")
        out[name] = load_set(path, emails)
    return out


def correction_set(corrections: Iterable[Correction]) -> list[LabelledEmail]:
    """Staff corrections (`storage.corrections`) as a labelled set. Their language is not
    labelled: it is left empty (per-language figures count them as `?`)."""
    out: list[LabelledEmail] = []
    for c in corrections:
        if c.raw is None or not c.labels or not set(c.labels) <= set(ALL_KINDS):
            continue
        out.append(
            LabelledEmail(
                file=f"correction {c.id} (case {c.case_id}, email {c.email_id})",
                raw=c.raw,
                language="",
                primary=c.labels[0],
                labels=tuple(c.labels),
                note=f"changed by {c.actor} at {c.at.isoformat()}",
            )
        )
    return out
