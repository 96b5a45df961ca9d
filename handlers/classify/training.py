"""Training the learned classifier (issue 9), and judging it honestly: leave one set out.

    sets = training_sets.bundled_sets()                  # four sets, four authors
    results = leave_one_set_out(sets)                    # train on three, test on the fourth
    print(format_report(results))
    trained = train(sets, evaluation=results)            # the model of all sets, its LOSO figures inside
    path.write_bytes(trained.data)                       # what handlers.classify.model.Model.load reads

**The recipe** (ported from the prototype of issue 9): the feature blocks of
`handlers.classify.features` (character 3–5-grams and words of the subject and the sender's new
text, subject words, quoted words, the rule file's word families), sublinear tf·idf per block
(vocabulary: features seen in at least two training emails, sorted), a multinomial logistic
regression over the eight human kinds (`class_weight="balanced"`, lbfgs) and one one-vs-rest
logistic regression per right for the further labels. Machine mail is never trained on: it stays
with `handlers.mail_in.machine_mail`.

**Nested choices.** C is chosen from `C_GRID` by the accuracy of leave-one-set-out predictions
*inside* the training sets; the review thresholds (`other_req`, `other`, `top`) and the label
threshold from the same out-of-fold predictions: no request missed, then the fewest reviews. A set
held out is never seen by any of these choices. Sets too small to be held out (fewer than
`MIN_HELD_OUT` human emails, e.g. a handful of staff corrections) are always trained on; with fewer
than two sets to hold out, three interleaved folds stand in for the sets.

**Deterministic.** Sorted vocabulary, lbfgs, no random state; the file is gzip with mtime 0 and
sorted JSON keys, so the same sets give the same bytes.

**Only here.** scikit-learn, scipy and numpy are imported inside the functions that train, never when
this module is imported, and never by anything the bot runs: the exported model is scored by the
pure-Python `handlers.classify.model.Model` (what `evaluate_model` measures, ms per email included).
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import tempfile
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.vocabulary import AUTOMATED_KINDS, KINDS, REQUEST_KINDS
from handlers.classify import classifier
from handlers.classify.evaluation import Evaluation, LabelledEmail, evaluate, format_evaluation
from handlers.classify.features import Blocks, extract
from handlers.classify.model import Model
from handlers.mail_in.parsing import parse_email

__all__ = [
    "C_GRID",
    "DEFAULTS",
    "FLOOR",
    "HeldOut",
    "SetFigures",
    "Trained",
    "TrainingUnavailable",
    "compare",
    "evaluate_model",
    "featurize",
    "figures",
    "floor_misses",
    "format_report",
    "leave_one_set_out",
    "require_sklearn",
    "train",
]

#: The kinds the model chooses among (machine mail is decided by rules), in the model file's order.
HUMAN = KINDS
#: The rights a one-vs-rest head adds as further labels (`complaint` only ever as primary).
LABEL_KINDS = (*REQUEST_KINDS, "complaint")
CASE_KINDS = frozenset(LABEL_KINDS)
DEFAULTS: dict[str, Any] = {
    "C": 10.0,
    "min_df": 2,
    "block_weights": {"c": 1.0, "w": 0.7, "s": 0.4, "q": 0.4, "f": 0.3},
    "class_weight": "balanced",
    "label_C": 30.0,
}
C_GRID = (10.0, 30.0, 100.0, 300.0)
#: Share of the features whose weights are shipped (the others still count in each block's norm).
KEEP = 0.5
#: A set with fewer human emails than this is only ever trained on, never held out.
MIN_HELD_OUT = 20
FORMAT = "privacy-desk-linear/1"
#: The floor of issue 9, on every held-out set.
FLOOR = {"accuracy": 0.90, "review": 0.25}
INSTALL_HINT = "pip install 'privacy-desk[train]'"


class TrainingUnavailable(RuntimeError):
    """scikit-learn (or numpy/scipy) is not installed."""


def require_sklearn() -> None:
    """Raise `TrainingUnavailable` (naming the extra to install) unless training can run."""
    try:
        import numpy  # noqa: F401
        import scipy.sparse  # noqa: F401
        import sklearn.linear_model  # noqa: F401
        import threadpoolctl  # noqa: F401
    except ImportError as e:
        raise TrainingUnavailable(
            f"training the classifier needs scikit-learn ({e.name} is missing): {INSTALL_HINT}"
        ) from None


# --- examples ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Example:
    """A labelled email with its feature blocks, as the classifier reads it."""

    item: LabelledEmail
    blocks: Blocks

    @property
    def human(self) -> bool:
        """Whether a person wrote it (by its label): only those are trained on."""
        return self.item.primary not in AUTOMATED_KINDS


def blocks_of(raw: bytes) -> Blocks:
    """The feature blocks of a raw message, exactly as `classifier.classify` computes them."""
    email = parse_email(raw)
    subject, subject_is_reply = classifier._subject(email)
    body = classifier._body(email)
    return extract(
        email, subject=subject, subject_is_reply=subject_is_reply, body=body, families=classifier._FAMILIES
    )


def featurize(sets: Mapping[str, Sequence[LabelledEmail]]) -> dict[str, list[Example]]:
    """Every set's emails with their feature blocks (done once, reused by every fold)."""
    return {name: [Example(item, blocks_of(item.raw)) for item in items] for name, items in sets.items()}


# --- fitting (numpy / scikit-learn from here on, imported inside) ------------------------------


def _vocabulary(examples: Sequence[Example], min_df: int) -> tuple[list[str], dict[str, int], list[float]]:
    df: dict[str, int] = {}
    for ex in examples:
        for block, feats in ex.blocks.items():
            for feature in feats:
                key = f"{block}|{feature}"
                df[key] = df.get(key, 0) + 1
    names = sorted(k for k, n in df.items() if n >= min_df)
    n = len(examples)
    idf = [math.log((1 + n) / (1 + df[k])) + 1.0 for k in names]
    return names, {k: i for i, k in enumerate(names)}, idf


def _matrix(examples: Sequence[Example], index: Mapping[str, int], idf: Sequence[float], weights: Any) -> Any:
    import numpy as np
    from scipy.sparse import csr_matrix

    from handlers.classify.features import vectorize

    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, ex in enumerate(examples):
        for j, v in vectorize(ex.blocks, index, idf, weights):
            rows.append(i)
            cols.append(j)
            vals.append(v)
    return csr_matrix((vals, (rows, cols)), shape=(len(examples), len(index)), dtype=np.float64)


def _fit(examples: Sequence[Example], params: Mapping[str, Any]) -> dict[str, Any]:
    """A model (numpy arrays and vocabulary) trained on the human examples."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    ex = [e for e in examples if e.human]
    names, index, idf = _vocabulary(ex, params["min_df"])
    X = _matrix(ex, index, idf, params["block_weights"])
    y = np.array([HUMAN.index(e.item.primary) for e in ex])
    clf = LogisticRegression(C=params["C"], max_iter=5000, class_weight=params["class_weight"], tol=1e-6)
    clf.fit(X, y)
    W = np.zeros((len(names), len(HUMAN)))
    b = np.full(len(HUMAN), -30.0)  # a kind never seen in training is never chosen
    if len(clf.classes_) > 2:
        W[:, clf.classes_] = clf.coef_.T
        b[clf.classes_] = clf.intercept_
    else:  # two kinds: sklearn keeps one logit; split it in half so the softmax gives the same odds
        W[:, clf.classes_] = np.stack([-clf.coef_[0], clf.coef_[0]], 1) / 2
        b[clf.classes_] = np.array([-clf.intercept_[0], clf.intercept_[0]]) / 2
    WL = np.zeros((len(names), len(LABEL_KINDS)))
    bL = np.full(len(LABEL_KINDS), -30.0)
    for k, kind in enumerate(LABEL_KINDS):  # one-vs-rest: does the message carry label k?
        t = np.array([kind in e.item.labels for e in ex], dtype=int)
        if 0 < t.sum() < len(t):
            m = LogisticRegression(C=params["label_C"], max_iter=5000, class_weight="balanced", tol=1e-6)
            m.fit(X, t)
            WL[:, k] = m.coef_[0]
            bL[k] = m.intercept_[0]
    return {"names": names, "index": index, "idf": idf, "W": W, "b": b, "WL": WL, "bL": bL, "params": params}


def _predict(model: Mapping[str, Any], examples: Sequence[Example]) -> tuple[Any, Any]:
    """(probabilities over HUMAN, label probabilities over LABEL_KINDS) of each example."""
    import numpy as np

    X = _matrix(examples, model["index"], model["idf"], model["params"]["block_weights"])
    z = X @ model["W"] + model["b"]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    pl = 1.0 / (1.0 + np.exp(-np.clip(X @ model["WL"] + model["bL"], -30, 30)))
    return p, pl


def _decide(
    p: Sequence[float], pl: Sequence[float], th: Mapping[str, float]
) -> tuple[str, tuple[str, ...], bool]:
    """Kind, labels and review flag, as `Model.predict` decides them."""
    order = sorted(range(len(HUMAN)), key=lambda k: -p[k])
    kind = HUMAN[order[0]]
    top, second = p[order[0]], p[order[1]]
    review = top < th["top"] or top - second < th["margin"]
    if kind == "other":
        requests = sum(x for c, x in zip(HUMAN, p, strict=True) if c != "other")
        review = review or top < th["other"] or requests >= th["other_req"]
    labels = [kind]
    if kind != "other":
        for k, label in enumerate(LABEL_KINDS):
            if label not in (kind, "complaint") and pl[k] >= th["label"]:
                labels.append(label)
    return kind, tuple(labels), bool(review)


Record = tuple[Any, Any, LabelledEmail]


def _tune_thresholds(records: Sequence[Record]) -> tuple[dict[str, float], tuple[int, int]]:
    """Thresholds from out-of-fold predictions: no request missed, then the fewest reviews; then
    the label threshold with the most exact label sets. Returns them and (misses, reviews)."""
    best: tuple[tuple[float, ...], dict[str, float]] | None = None
    for t_top in (0.0, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6):
        for t_other in (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95):
            for t_req in (1.1, 0.4, 0.3, 0.2, 0.15, 0.1):
                th = {"top": t_top, "margin": 0.0, "other": t_other, "other_req": t_req, "label": 0.5}
                miss = rev = 0
                for p, pl, item in records:
                    kind, _, review = _decide(p, pl, th)
                    rev += review
                    miss += item.primary in CASE_KINDS and kind not in CASE_KINDS and not review
                key = (miss, rev, t_top, t_other, -t_req)
                if best is None or key < best[0]:
                    best = (key, th)
    assert best is not None
    th = dict(best[1])
    # a safety margin: a new author's mail is less certain than out-of-fold mail of known authors
    if th["other"]:
        th["other"] = min(0.97, th["other"] + 0.05)
    best_label = (-1, 0.5)
    for t_label in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        trial = dict(th, label=t_label)
        exact = sum(set(_decide(p, pl, trial)[1]) == set(item.labels) for p, pl, item in records)
        if exact > best_label[0]:
            best_label = (exact, t_label)
    th["label"] = best_label[1]
    return th, (int(best[0][0]), int(best[0][1]))


def _inner_folds(sets: Mapping[str, Sequence[Example]]) -> list[tuple[list[Example], list[Example]]]:
    """(train, test) pairs inside the training sets: leave one set out among the sets big enough
    to be held out (the small ones always train); with fewer than two, three interleaved folds."""
    big = [n for n, s in sets.items() if sum(e.human for e in s) >= MIN_HELD_OUT]
    if len(big) >= 2:
        return [
            ([e for n in sets if n != held for e in sets[n]], [e for e in sets[held] if e.human])
            for held in big
        ]
    pooled = [e for s in sets.values() for e in s]
    return [
        (
            [e for i, e in enumerate(pooled) if i % 3 != k],
            [e for i, e in enumerate(pooled) if i % 3 == k and e.human],
        )
        for k in range(3)
    ]


def _tune(
    sets: Mapping[str, Sequence[Example]], *, C: float | None = None, log: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], dict[str, float]]:
    """Choose C (unless given) and the thresholds using only `sets`; the params and thresholds."""
    import numpy as np

    params = dict(DEFAULTS)
    folds = _inner_folds(sets)
    best: tuple[float, float, list[Record]] | None = None
    for c in (C,) if C is not None else C_GRID:
        trial = dict(params, C=c)
        records: list[Record] = []
        for train_part, test_part in folds:
            model = _fit(train_part, trial)
            p, pl = _predict(model, test_part)
            records += [(p[i], pl[i], e.item) for i, e in enumerate(test_part)]
        acc = float(np.mean([HUMAN[int(np.argmax(r[0]))] == r[2].primary for r in records]))
        if log:
            log(f"    inner C={c:g}: accuracy {acc:.3f}")
        if best is None or acc > best[0] + 1e-9:
            best = (acc, c, records)
    assert best is not None
    params["C"] = best[1]
    th, (miss, rev) = _tune_thresholds(best[2])
    if log:
        log(f"    chose C={best[1]:g}, thresholds {th} (inner: {miss} missed, {rev}/{len(best[2])} reviewed)")
    return params, th


# --- export --------------------------------------------------------------------------------------


def _b64(values: Any) -> str:
    return base64.b64encode(array("f", [float(v) for v in values]).tobytes()).decode("ascii")


def _export(model: Mapping[str, Any], thresholds: Mapping[str, float], info: Mapping[str, Any]) -> bytes:
    """The model file: gzipped JSON (the format `Model.load` reads). Weights are kept for the
    `KEEP` share of features with the largest max |w|; the others still count in the norm."""
    import numpy as np

    W, WL = model["W"], model["WL"]
    strength = np.maximum(np.abs(W).max(axis=1), np.abs(WL).max(axis=1))
    cut = np.quantile(strength, 1.0 - KEEP) if KEEP < 1.0 else -1.0
    rows = np.flatnonzero(strength >= cut)
    doc = {
        "format": FORMAT,
        "classes": list(HUMAN),
        "label_kinds": list(LABEL_KINDS),
        "block_weights": model["params"]["block_weights"],
        "params": {k: v for k, v in model["params"].items() if k != "block_weights"},
        "thresholds": dict(thresholds),
        "vocab": model["names"],
        "idf": _b64(model["idf"]),
        "rows": base64.b64encode(array("i", [int(r) for r in rows]).tobytes()).decode("ascii"),
        "W": _b64(W[rows].astype(np.float32).ravel()),
        "b": [float(x) for x in model["b"]],
        "WL": _b64(WL[rows].astype(np.float32).ravel()),
        "bL": [float(x) for x in model["bL"]],
        "info": dict(info),
    }
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return gzip.compress(data, compresslevel=9, mtime=0)


@dataclass(frozen=True, slots=True)
class Trained:
    """A trained model: the file's bytes and what was chosen."""

    data: bytes
    params: dict[str, Any]
    thresholds: dict[str, float]
    features: int
    seconds: float

    def model(self) -> Model:
        """The model as the bot loads it."""
        return Model(json.loads(gzip.decompress(self.data)))


def _as_examples(sets: Mapping[str, Sequence[LabelledEmail] | Sequence[Example]]) -> dict[str, list[Example]]:
    out: dict[str, list[Example]] = {}
    todo: dict[str, Sequence[LabelledEmail]] = {}
    for name, items in sets.items():
        if items and isinstance(items[0], Example):
            out[name] = list(items)  # type: ignore[arg-type]
        else:
            todo[name] = items  # type: ignore[assignment]
    out.update(featurize(todo))
    return {name: out[name] for name in sets}


def train(
    sets: Mapping[str, Sequence[LabelledEmail] | Sequence[Example]],
    *,
    C: float | None = None,
    evaluation: Sequence[HeldOut] = (),
    log: Callable[[str], None] | None = None,
) -> Trained:
    """Train on every email of `sets` (C and thresholds chosen inside them, C fixed when given);
    the leave-one-set-out figures of `evaluation` are stored in the file (`info`)."""
    require_sklearn()
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    examples = _as_examples(sets)
    # One BLAS thread: many threads on these small problems are up to 40 times slower (they wait
    # on each other), and one thread also keeps the sums, hence the file, the same from run to run.
    with threadpool_limits(limits=1):
        params, th = _tune(examples, C=C, log=log)
        model = _fit([e for s in examples.values() for e in s], params)
    info = {
        "trained_on": {name: len(s) for name, s in examples.items()},
        "C_chosen": C is None,
        "loso": {h.name: h.figures.stored() for h in evaluation},
    }
    data = _export(model, th, info)
    return Trained(data, params, th, len(model["names"]), time.perf_counter() - t0)


# --- evaluation ----------------------------------------------------------------------------------


@contextmanager
def _using(model_path: Path) -> Iterator[None]:
    """Classify with the model file at `model_path` for a while (the one in use comes back)."""
    saved = (classifier._model, classifier._model_path, classifier._model_failed)
    try:
        classifier.use_model(model_path)
        yield
    finally:
        classifier._model, classifier._model_path, classifier._model_failed = saved


def evaluate_model(
    data_or_path: bytes | Path, items: Sequence[LabelledEmail], *, name: str = ""
) -> Evaluation:
    """Classify `items` as the bot would with this model (pure Python: `classifier.classify`
    with the model loaded by `Model`) and measure it."""
    if isinstance(data_or_path, Path):
        with _using(data_or_path):
            return evaluate(list(items), name=name)
    fd, tmp = tempfile.mkstemp(suffix=".json.gz")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data_or_path)
        with _using(Path(tmp)):
            return evaluate(list(items), name=name)
    finally:
        os.unlink(tmp)


@dataclass(frozen=True, slots=True)
class SetFigures:
    """The headline figures of one evaluated set."""

    n: int
    correct: int
    requests: int  # requests and complaints
    caught: int  # of those, typed as one or flagged for review
    typed: int  # of those, typed as a request or complaint
    reviewed: int
    humans_as_machines: int
    wrong_unflagged: int
    exact_labels: int
    languages: dict[str, tuple[int, int]] = field(default_factory=dict)  # language -> (correct, n)
    ms_mean: float = 0.0
    ms_max: float = 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 1.0

    @property
    def review_rate(self) -> float:
        return self.reviewed / self.n if self.n else 0.0

    def stored(self) -> dict[str, int]:
        """What a model file keeps of it (integers only: the file stays deterministic)."""
        return {
            "n": self.n,
            "correct": self.correct,
            "requests": self.requests,
            "caught": self.caught,
            "reviewed": self.reviewed,
            "humans_as_machines": self.humans_as_machines,
        }


def figures(ev: Evaluation) -> SetFigures:
    """The headline figures of an evaluation."""
    outs = ev.outcomes
    reqs = [o for o in outs if o.item.primary in CASE_KINDS]
    langs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o in outs:
        cell = langs[o.item.language or "?"]
        cell[0] += o.correct
        cell[1] += 1
    ms = [o.classify_ms for o in outs] or [0.0]
    return SetFigures(
        n=len(outs),
        correct=sum(o.correct for o in outs),
        requests=len(reqs),
        caught=sum(o.result.kind in CASE_KINDS or o.result.needs_review for o in reqs),
        typed=sum(o.result.kind in CASE_KINDS for o in reqs),
        reviewed=sum(o.result.needs_review for o in outs),
        humans_as_machines=len(ev.humans_as_automated),
        wrong_unflagged=len(ev.wrong_without_review),
        exact_labels=sum(set(o.result.labels) == set(o.item.labels) for o in outs),
        languages={k: (v[0], v[1]) for k, v in sorted(langs.items())},
        ms_mean=sum(ms) / len(ms),
        ms_max=max(ms),
    )


def floor_misses(f: SetFigures) -> list[str]:
    """What of issue 9's floor a held-out set misses (empty when it meets it)."""
    out = []
    if f.accuracy < FLOOR["accuracy"]:
        out.append(f"accuracy {f.accuracy:.3f} < {FLOOR['accuracy']:.2f}")
    if f.caught < f.requests:
        out.append(f"{f.requests - f.caught} request(s) missed")
    if f.review_rate > FLOOR["review"]:
        out.append(f"review {f.review_rate:.0%} > {FLOOR['review']:.0%}")
    if f.humans_as_machines:
        out.append(f"{f.humans_as_machines} human email(s) taken for machine mail")
    return out


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One fold: the set held out, what was chosen without it, and how the model did on it."""

    name: str
    trained_on: tuple[str, ...]
    evaluation: Evaluation
    figures: SetFigures
    params: dict[str, Any]
    thresholds: dict[str, float]
    features: int
    size: int
    seconds: float


def leave_one_set_out(
    sets: Mapping[str, Sequence[LabelledEmail] | Sequence[Example]],
    *,
    held_out: Sequence[str] | None = None,
    C: float | None = None,
    log: Callable[[str], None] | None = None,
) -> list[HeldOut]:
    """For each set of `held_out` (default: every set big enough, see `MIN_HELD_OUT`), train on
    all the others (choices nested inside them) and measure the exported model on it."""
    require_sklearn()
    examples = _as_examples(sets)
    names = (
        list(held_out)
        if held_out is not None
        else [n for n, s in examples.items() if sum(e.human for e in s) >= MIN_HELD_OUT]
    )
    results = []
    for held in names:
        rest = {n: s for n, s in examples.items() if n != held}
        if log:
            log(f"[{held}] training on {', '.join(rest)}")
        trained = train(rest, C=C, log=log)
        ev = evaluate_model(trained.data, [e.item for e in examples[held]], name=f"{held} (held out)")
        results.append(
            HeldOut(
                held, tuple(rest), ev, figures(ev), trained.params, trained.thresholds,
                trained.features, len(trained.data), trained.seconds,
            )
        )  # fmt: skip
    return results


def _c(params: Mapping[str, Any]) -> str:
    return f"{params['C']:g}" if "C" in params else "-"


def format_report(results: Sequence[HeldOut], *, details: bool = False, in_sample: bool = False) -> str:
    """The leave-one-set-out table, per-language accuracy, then each set's per-class figures and
    confusion matrix (`handlers.classify.evaluation.format_evaluation`)."""
    title = (
        "in-sample (trained on these sets: not evidence of anything)" if in_sample else "leave-one-set-out"
    )
    lines = [
        f"== {title} ==",
        f"{'held-out' if not in_sample else 'set':<12}{'n':>4}{'acc':>7}{'req caught':>12}{'typed':>9}"
        f"{'review':>8}{'h->mach':>8}{'wrong!rev':>10}{'labels=':>8}{'ms/mail':>8}{'max':>6}  C / floor",
    ]
    for r in results:
        f = r.figures
        misses = floor_misses(f)
        lines.append(
            f"{r.name:<12}{f.n:>4}{f.accuracy:>7.3f}{f'{f.caught}/{f.requests}':>12}{f'{f.typed}/{f.requests}':>9}"
            f"{f.review_rate:>8.2f}{f.humans_as_machines:>8}{f.wrong_unflagged:>10}"
            f"{f.exact_labels / f.n if f.n else 1:>8.2f}{f.ms_mean:>8.2f}{f.ms_max:>6.1f}  "
            f"{_c(r.params):<5} "
            + (
                "(in-sample)"
                if in_sample
                else "meets the floor"
                if not misses
                else "MISSES: " + "; ".join(misses)
            )
        )
    total = sum(r.figures.n for r in results)
    if total:
        lines.append(
            f"{'all':<12}{total:>4}{sum(r.figures.correct for r in results) / total:>7.3f}"
            f"{f'{sum(r.figures.caught for r in results)}/{sum(r.figures.requests for r in results)}':>12}"
            f"{f'{sum(r.figures.typed for r in results)}/{sum(r.figures.requests for r in results)}':>9}"
            f"{sum(r.figures.reviewed for r in results) / total:>8.2f}"
            f"{sum(r.figures.humans_as_machines for r in results):>8}"
            f"{sum(r.figures.wrong_unflagged for r in results):>10}"
        )
    langs = sorted({lang for r in results for lang in r.figures.languages})
    lines += ["", "primary accuracy per language:", f"{'':<12}" + "".join(f"{lang:>11}" for lang in langs)]
    for r in results:
        cells = []
        for lang in langs:
            ok, n = r.figures.languages.get(lang, (0, 0))
            cells.append(f"{ok / n:.2f} ({n:>3})" if n else "-")
        lines.append(f"{r.name:<12}" + "".join(f"{c:>11}" for c in cells))
    for r in results:
        lines += ["", format_evaluation(r.evaluation, details=details)]
        if in_sample:
            continue
        lines += [
            f"trained on {', '.join(r.trained_on)}: C={_c(r.params)}, thresholds {r.thresholds}, "
            f"{r.features} features, model {r.size / 1024:.0f} KiB, {r.seconds:.0f} s",
        ]
    return "\n".join(lines)


# --- is the new model worse? ---------------------------------------------------------------------


def _pooled(figs: Mapping[str, Mapping[str, int]]) -> tuple[int, int, int, int]:
    return (
        sum(f["correct"] for f in figs.values()),
        sum(f["n"] for f in figs.values()),
        sum(f["requests"] - f["caught"] for f in figs.values()),
        sum(f["humans_as_machines"] for f in figs.values()),
    )


def compare(
    new: Trained,
    new_loso: Sequence[HeldOut],
    current: Path | None,
    bundled: Mapping[str, Sequence[LabelledEmail]],
) -> tuple[bool, str]:
    """Whether the new model may replace the current one, and why.

    When the current model's file holds leave-one-set-out figures of the same held-out sets, the
    new recipe's figures must be at least as good: pooled primary accuracy not lower, no more
    requests missed, no more humans taken for machines. Otherwise (e.g. the bundled model, trained
    elsewhere) both models are scored on the bundled sets, and the new one's accuracy and
    requests caught must not be lower."""
    if current is None or not current.is_file():
        return True, "no current model"
    try:
        old = Model.load(current)
    except ValueError as e:
        return True, f"the current model cannot be read ({e})"
    stored = old.info.get("loso") or {}
    mine = {h.name: h.figures.stored() for h in new_loso if h.name in bundled}
    if mine and set(mine) <= set(stored):
        o_ok, o_n, o_miss, o_hm = _pooled({k: stored[k] for k in mine})
        n_ok, n_n, n_miss, n_hm = _pooled(mine)
        o_acc, n_acc = o_ok / o_n if o_n else 1.0, n_ok / n_n if n_n else 1.0
        what = (
            f"leave-one-set-out on {', '.join(mine)}: accuracy {n_acc:.3f} (current {o_acc:.3f}), "
            f"requests missed {n_miss} (current {o_miss}), humans as machines {n_hm} (current {o_hm})"
        )
        return (n_acc >= o_acc - 1e-9 and n_miss <= o_miss and n_hm <= o_hm), what
    items = [i for s in bundled.values() for i in s]
    o = figures(evaluate_model(current, items, name="current"))
    n = figures(evaluate_model(new.data, items, name="new"))
    what = (
        f"on the {len(items)} bundled emails (the current model holds no comparable leave-one-set-out "
        f"figures): accuracy {n.accuracy:.3f} (current {o.accuracy:.3f}), requests caught "
        f"{n.caught}/{n.requests} (current {o.caught}/{o.requests})"
    )
    return (n.accuracy >= o.accuracy - 1e-9 and n.caught >= o.caught), what
