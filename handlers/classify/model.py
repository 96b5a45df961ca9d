"""The learned model, served in pure Python: no scikit-learn, no numpy at run time.

The model file (gzipped JSON, written by `handlers.classify.training`) holds the vocabulary of
features, their idf, the weights of a multinomial logistic regression over the eight human kinds
(only the strongest half of the features keep weights), one-vs-rest weights for the further
labels, and the thresholds chosen when it was trained. Scoring is a sparse dot product: about
1–3 ms for ordinary mail, a few megabytes of memory.

`predict` answers the kind (argmax), the labels (every other right whose own probability reaches
the `label` threshold; `complaint` is only ever primary, and `other` has none), the confidence
(the top probability), whether a person should confirm the type, and the phrases that weighed
most: review when the model says `other` while the request kinds together hold at least
`other_req` of the probability (missing evidence is never confidence), or when the top
probability or its margin is below the trained thresholds.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.classify.features import Blocks, vectorize

__all__ = ["BUNDLED_MODEL", "Model", "Prediction"]

#: The model shipped with the package (trained on the bundled labelled sets).
BUNDLED_MODEL = Path(__file__).resolve().parent / "data" / "model.json.gz"
MAX_PHRASES = 4


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model says of one email."""

    kind: str
    labels: tuple[str, ...]
    confidence: float
    review: bool
    runner_up: str
    runner_up_probability: float
    phrases: tuple[str, ...]


def _floats(b64: str) -> array[float]:
    values: array[float] = array("f")
    values.frombytes(base64.b64decode(b64))
    return values


class Model:
    """A loaded model: `Model.load(path)`, then `predict(blocks)`."""

    def __init__(self, doc: dict[str, Any], *, source: Path | None = None) -> None:
        self.source = source
        self.classes: tuple[str, ...] = tuple(doc["classes"])
        self.label_kinds: tuple[str, ...] = tuple(doc["label_kinds"])
        self.block_weights: dict[str, float] = dict(doc["block_weights"])
        self.thresholds: dict[str, float] = dict(doc["thresholds"])
        self.vocab: list[str] = list(doc["vocab"])
        self.index = {feature: i for i, feature in enumerate(self.vocab)}
        self.idf = _floats(doc["idf"]).tolist()  # a list indexes faster than an array
        rows: array[int] = array("i")
        rows.frombytes(base64.b64decode(doc["rows"]))
        self.rowmap: array[int] = array("i", [-1]) * len(self.vocab)  # feature -> weight row
        for row, j in enumerate(rows):
            self.rowmap[j] = row
        self.weights = _floats(doc["W"])
        self.bias = [float(x) for x in doc["b"]]
        self.label_weights = _floats(doc["WL"])
        self.label_bias = [float(x) for x in doc["bL"]]
        self.info: dict[str, Any] = dict(doc.get("info") or {})

    @classmethod
    def load(cls, path: Path | str) -> Model:
        """Read a model file; raises ValueError when it is not one."""
        path = Path(path)
        try:
            return cls(json.loads(gzip.decompress(path.read_bytes())), source=path)
        except (OSError, EOFError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path} is not a classifier model ({type(e).__name__})") from None

    # --- scoring ---------------------------------------------------------------------------------
    def _probabilities(self, vec: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
        k_main, k_labels = len(self.classes), len(self.label_kinds)
        weights, label_weights, rowmap = self.weights, self.label_weights, self.rowmap
        z = list(self.bias)
        zl = list(self.label_bias)
        for j, v in vec:
            row = rowmap[j]
            if row < 0:
                continue
            offset = row * k_main
            for k in range(k_main):
                z[k] += v * weights[offset + k]
            offset = row * k_labels
            for k in range(k_labels):
                zl[k] += v * label_weights[offset + k]
        top = max(z)
        exps = [math.exp(x - top) for x in z]
        total = sum(exps)
        return [x / total for x in exps], [1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x)))) for x in zl]

    def predict(self, blocks: Blocks) -> Prediction:
        """The kind, labels, confidence, review flag and deciding phrases of one email."""
        vec = vectorize(blocks, self.index, self.idf, self.block_weights)
        p, pl = self._probabilities(vec)
        th = self.thresholds
        order = sorted(range(len(self.classes)), key=lambda k: -p[k])
        kind, runner = self.classes[order[0]], self.classes[order[1]]
        top, second = p[order[0]], p[order[1]]
        review = top < th.get("top", 0.0) or top - second < th.get("margin", 0.0)
        if kind == "other":
            requests = sum(x for c, x in zip(self.classes, p, strict=True) if c != "other")
            review = review or top < th.get("other", 0.0) or requests >= th.get("other_req", 1.0)
        labels = [kind]
        if kind != "other":
            for k, label in enumerate(self.label_kinds):
                if label not in (kind, "complaint") and pl[k] >= th.get("label", 0.5):
                    labels.append(label)
        return Prediction(
            kind=kind,
            labels=tuple(labels),
            confidence=round(top, 3),
            review=bool(review),
            runner_up=runner,
            runner_up_probability=round(second, 3),
            phrases=tuple(self._phrases(vec, kind, runner)),
        )

    def _phrases(self, vec: list[tuple[int, float]], kind: str, runner_up: str) -> list[str]:
        """The sender's words (bigrams, or words of 7+ letters) that pushed most towards `kind`
        against the runner-up."""
        k, k2, width = self.classes.index(kind), self.classes.index(runner_up), len(self.classes)
        scored = []
        for j, v in vec:
            name, row = self.vocab[j], self.rowmap[j]
            if row >= 0 and name.startswith("w|") and (" " in name or len(name) >= 7):
                push = v * (self.weights[row * width + k] - self.weights[row * width + k2])
                if push > 0:
                    scored.append((push, name[2:]))
        scored.sort(reverse=True)
        out: list[str] = []
        for _, phrase in scored:
            if any(phrase in o or o in phrase for o in out):
                continue
            out.append(phrase)
            if len(out) == MAX_PHRASES:
                break
        return out
