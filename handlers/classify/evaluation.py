"""Measuring `handlers.classify.classifier.classify` against a labelled set of emails.

A labelled set is a folder with `.eml` files and a `labels.csv` (columns `file`, `language`,
`primary`, `labels` — labels separated by `|`, primary first — and optional others), the format of
`../shared/corpus/templates/` and `tests/fixtures/labelled/`. The same rows are what a staff
correction in Slack can later be stored as: the raw message plus the kind and labels a person chose.

`evaluate(items)` parses and classifies every message and returns an `Evaluation` with per-class
precision, recall and F1 (for the primary kind and for the multi-label `labels`), primary accuracy,
the confusion matrix, the two safety counts of issue 3 (requests taken for `other` or for machine
traffic, human mail taken for machine traffic) and the time per email. `format_evaluation` renders
it as text. Nothing here prints; `bench/classify_eval.py` does.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from core.vocabulary import AUTOMATED_KINDS, KINDS, REQUEST_KINDS
from handlers.classify.classifier import Classification, classify
from handlers.mail_in.parsing import parse_email

__all__ = [
    "ALL_KINDS",
    "ClassScore",
    "Evaluation",
    "LabelledEmail",
    "Outcome",
    "evaluate",
    "format_evaluation",
    "load_labelled",
]

#: Every kind in the order rows and columns are printed.
ALL_KINDS = (*KINDS, *AUTOMATED_KINDS)
_CASE_KINDS = frozenset((*REQUEST_KINDS, "complaint"))


@dataclass(frozen=True, slots=True)
class LabelledEmail:
    """One labelled message: where it is, its raw bytes and what a person said it is."""

    file: str
    raw: bytes
    language: str
    primary: str
    labels: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The classifier's answer for one labelled message, with the time it took (milliseconds)."""

    item: LabelledEmail
    result: Classification
    parse_ms: float
    classify_ms: float

    @property
    def correct(self) -> bool:
        """Whether the primary kind is the labelled one."""
        return self.result.kind == self.item.primary


@dataclass(frozen=True, slots=True)
class ClassScore:
    """Precision, recall and F1 of one class, with the counts behind them."""

    kind: str
    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        """How many messages carry the class in the labels."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """tp / (tp + fp), 1.0 when the class was never predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn), 1.0 when the class never occurs."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Figures for one labelled set; see the module docstring."""

    name: str
    outcomes: tuple[Outcome, ...]
    primary_scores: tuple[ClassScore, ...]
    label_scores: tuple[ClassScore, ...]
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of messages."""
        return len(self.outcomes)

    @property
    def accuracy(self) -> float:
        """Share of messages whose primary kind is right."""
        return sum(o.correct for o in self.outcomes) / self.total if self.total else 1.0

    @property
    def exact_labels(self) -> float:
        """Share of messages whose label set is exactly right (order aside)."""
        if not self.total:
            return 1.0
        return sum(set(o.result.labels) == set(o.item.labels) for o in self.outcomes) / self.total

    @property
    def language_accuracy(self) -> float:
        """Share of human messages whose language is the labelled one."""
        human = [o for o in self.outcomes if o.item.primary not in AUTOMATED_KINDS]
        return sum(o.result.language == o.item.language for o in human) / len(human) if human else 1.0

    @property
    def requests_missed(self) -> tuple[Outcome, ...]:
        """Requests and complaints classified `other`, `auto_reply` or `bounce`."""
        return tuple(
            o for o in self.outcomes if o.item.primary in _CASE_KINDS and o.result.kind not in _CASE_KINDS
        )

    @property
    def humans_as_automated(self) -> tuple[Outcome, ...]:
        """Human messages classified as machine traffic."""
        return tuple(o for o in self.outcomes if o.item.primary not in AUTOMATED_KINDS and o.result.automated)

    @property
    def errors(self) -> tuple[Outcome, ...]:
        """Messages whose primary kind is wrong."""
        return tuple(o for o in self.outcomes if not o.correct)

    @property
    def review_rate(self) -> float:
        """Share of messages flagged "please confirm the type"."""
        return sum(o.result.needs_review for o in self.outcomes) / self.total if self.total else 0.0

    @property
    def wrong_without_review(self) -> tuple[Outcome, ...]:
        """Wrong primary kinds that were *not* flagged for review (the costly mistakes)."""
        return tuple(o for o in self.errors if not o.result.needs_review)


def load_labelled(folder: Path, emails: str = "") -> list[LabelledEmail]:
    """The labelled messages of a folder with a `labels.csv`, in the CSV's order (the files under
    `folder/emails` when the set keeps them in a subfolder).

    Raises FileNotFoundError when the CSV or a listed file is missing and ValueError when a row's
    labels are not kinds or do not start with its primary kind.
    """
    items: list[LabelledEmail] = []
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            primary = row["primary"].strip()
            labels = tuple(x.strip() for x in (row.get("labels") or primary).split("|") if x.strip())
            if not labels or labels[0] != primary or not set(labels) <= set(ALL_KINDS):
                raise ValueError(f"{row['file']}: labels {labels} do not start with primary {primary!r}")
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


def _scores(pairs: list[tuple[set[str], set[str]]]) -> tuple[ClassScore, ...]:
    out = []
    for kind in ALL_KINDS:
        tp = sum(kind in gold and kind in pred for gold, pred in pairs)
        fp = sum(kind not in gold and kind in pred for gold, pred in pairs)
        fn = sum(kind in gold and kind not in pred for gold, pred in pairs)
        out.append(ClassScore(kind, tp, fp, fn))
    return tuple(out)


def evaluate(items: list[LabelledEmail], *, name: str = "") -> Evaluation:
    """Parse and classify every message and compute the figures (see `Evaluation`)."""
    outcomes: list[Outcome] = []
    for item in items:
        t0 = time.perf_counter()
        email = parse_email(item.raw)
        t1 = time.perf_counter()
        result = classify(email)
        t2 = time.perf_counter()
        outcomes.append(Outcome(item, result, (t1 - t0) * 1000, (t2 - t1) * 1000))
    confusion = Counter((o.item.primary, o.result.kind) for o in outcomes)
    primary = _scores([({o.item.primary}, {o.result.kind}) for o in outcomes])
    labels = _scores([(set(o.item.labels), set(o.result.labels)) for o in outcomes])
    return Evaluation(name, tuple(outcomes), primary, labels, dict(confusion))


def _table(scores: tuple[ClassScore, ...]) -> list[str]:
    lines = [f"  {'class':<14}{'prec':>6}{'recall':>8}{'F1':>6}{'n':>5}"]
    for s in scores:
        if s.support or s.fp:
            lines.append(f"  {s.kind:<14}{s.precision:>6.2f}{s.recall:>8.2f}{s.f1:>6.2f}{s.support:>5}")
    return lines


_SHORT = {
    "access": "acc",
    "rectification": "rect",
    "erasure": "eras",
    "restriction": "restr",
    "objection": "obj",
    "portability": "port",
    "complaint": "compl",
    "other": "other",
    "auto_reply": "auto",
    "bounce": "bnc",
}


def format_evaluation(ev: Evaluation, *, details: bool = True) -> str:
    """The evaluation as the text `bench/classify_eval.py` prints."""
    n = ev.total
    cls = [o.classify_ms for o in ev.outcomes] or [0.0]
    both = [o.classify_ms + o.parse_ms for o in ev.outcomes] or [0.0]
    lines = [
        f"== {ev.name}: {n} emails ==",
        f"primary accuracy        {ev.accuracy:.3f}  ({n - len(ev.errors)}/{n})",
        f"exact label sets        {ev.exact_labels:.3f}",
        f"language accuracy       {ev.language_accuracy:.3f}  (human mail)",
        f"requests missed as other/automated: {len(ev.requests_missed)}",
        f"humans taken for automated:         {len(ev.humans_as_automated)}",
        f"flagged for review      {ev.review_rate:.3f}; wrong and not flagged: {len(ev.wrong_without_review)}",
        f"ms/email classify       mean {sum(cls) / len(cls):.2f}  max {max(cls):.2f}",
        f"ms/email parse+classify mean {sum(both) / len(both):.2f}  max {max(both):.2f}",
        "",
        "per class, primary kind:",
        *_table(ev.primary_scores),
        "",
        "per label (multi-label, every right asked for):",
        *_table(ev.label_scores),
        "",
        "confusion matrix (rows: labelled primary, columns: predicted):",
    ]
    present = [k for k in ALL_KINDS if any(k in pair for pair in ev.confusion)]
    lines.append("  " + " " * 14 + "".join(f"{_SHORT[k]:>6}" for k in present))
    for gold in present:
        row = "".join(f"{ev.confusion.get((gold, pred), 0) or '.':>6}" for pred in present)
        lines.append(f"  {gold:<14}{row}")
    if details:
        wrong_labels = [o for o in ev.outcomes if o.correct and set(o.result.labels) != set(o.item.labels)]
        if ev.errors:
            lines += ["", "wrong primary kind:"]
            for o in ev.errors:
                flag = " (flagged for review)" if o.result.needs_review else ""
                lines.append(
                    f"  {o.item.file}: labelled {o.item.primary}, got {o.result.kind} "
                    f"{list(o.result.labels)} conf {o.result.confidence:.2f}{flag}"
                )
        if wrong_labels:
            lines += ["", "right primary kind, other labels differ:"]
            for o in wrong_labels:
                lines.append(
                    f"  {o.item.file}: labelled {'|'.join(o.item.labels)}, got {'|'.join(o.result.labels)}"
                )
    return "\n".join(lines)
