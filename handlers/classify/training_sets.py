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

import csv
from collections.abc import Iterable
from pathlib import Path

from handlers.classify.evaluation import ALL_KINDS, LabelledEmail
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


def load_set(folder: Path, emails: str = "") -> list[LabelledEmail]:
    """The labelled messages of `folder/labels.csv`, in its order; the files are under
    `folder/emails`. Raises FileNotFoundError when the CSV or a file is missing, ValueError when a
    row's labels are not kinds or do not start with its primary."""
    items: list[LabelledEmail] = []
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            primary = row["primary"].strip()
            labels = tuple(x.strip() for x in (row.get("labels") or primary).split("|") if x.strip())
            if not labels or labels[0] != primary or not set(labels) <= set(ALL_KINDS):
                raise ValueError(f"{folder / row['file']}: labels {labels} do not start with {primary!r}")
            items.append(
                LabelledEmail(
                    file=row["file"],
                    raw=(folder / emails / row["file"]).read_bytes(),
                    language=(row.get("language") or "").strip(),
                    primary=primary,
                    labels=labels,
                    note=(row.get("note") or row.get("notes") or "").strip(),
                )
            )
    return items


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
