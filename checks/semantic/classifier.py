"""The column semantic-type classifier: a linear head on MiniLM sentence vectors + simple features.

Input per column: table name, column name, kora type and a sample of raw values. Two texts
are encoded by the (frozen) MiniLM encoder: the header (``"birth date of customers (date)"``)
and the header with up to 12 values; their vectors and the features of
``checks.semantic.features`` (numeric ranges, formats) feed a multinomial logistic-regression
head trained by ``python -m checks.semantic.train`` and stored as a small JSON artifact
(``artifacts/semantic_head.json``), so runs never retrain. Types that cannot hold the column's
storage kind (an email in a date column) get probability zero.

Predictions are cached per (table, column, type, sample) so a column is classified once per
process, however many partitions and batches ask.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from checks.semantic.features import FEATURE_NAMES, column_features, column_text, header_text
from checks.semantic.types import COMPATIBLE_KINDS, SEMANTIC_TYPES, storage_kind

log = logging.getLogger("kora.semantic")
ARTIFACT = Path(__file__).with_name("artifacts") / "semantic_head.json"
SAMPLE_VALUES = 50  # values of a column the classifier looks at


@dataclass(frozen=True)
class ColumnProfile:
    table: str
    column: str
    ktype: str  # kora type text, e.g. varchar(80)
    values: tuple = ()  # a sample of raw values (text or None)

    @classmethod
    def of(cls, table: str, column: str, ktype, values) -> ColumnProfile:
        vals = tuple(None if v is None else str(v) for v in list(values)[:SAMPLE_VALUES])
        return cls(table, column, str(ktype), vals)

    def key(self) -> str:
        h = hashlib.sha1(json.dumps([self.table, self.column, self.ktype, self.values], ensure_ascii=False).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Prediction:
    type: str
    confidence: float
    probabilities: dict = field(default_factory=dict, compare=False, hash=False)

    def top(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:n]


def embed_texts(encoder, profiles: list[ColumnProfile]) -> np.ndarray:
    """[header vector | header+values vector] per column (one batched encoder call per kind)."""
    heads = encoder.encode([header_text(p.table, p.column, p.ktype) for p in profiles])
    full = encoder.encode([column_text(p.table, p.column, p.ktype, list(p.values)) for p in profiles])
    return np.concatenate([heads, full], axis=1)


def embed_inputs(encoder, profiles: list[ColumnProfile]) -> np.ndarray:
    """The head's input matrix: [header vector | header+values vector | features] per column."""
    feats = np.array([column_features(list(p.values), p.ktype) for p in profiles], dtype=np.float32)
    return np.concatenate([embed_texts(encoder, profiles), feats], axis=1)


def compatibility_mask(ktypes: list[str]) -> np.ndarray:
    kinds = [storage_kind(k) for k in ktypes]
    return np.array([[1.0 if kd in COMPATIBLE_KINDS[t] else 0.0 for t in SEMANTIC_TYPES] for kd in kinds],
                    dtype=np.float32)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class LinearHead:
    W: np.ndarray  # (inputs, classes)
    b: np.ndarray  # (classes,)
    mu: np.ndarray  # input standardisation
    sd: np.ndarray
    classes: tuple = SEMANTIC_TYPES
    meta: dict = field(default_factory=dict)

    def proba(self, X: np.ndarray, ktypes: list[str] | None = None) -> np.ndarray:
        p = softmax(((X - self.mu) / self.sd) @ self.W + self.b)
        if ktypes is not None:
            p = p * compatibility_mask(ktypes)
            p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
        return p

    def save(self, path: Path = ARTIFACT) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        r = lambda a: np.round(a.astype(np.float64), 5).tolist()  # noqa: E731
        path.write_text(json.dumps({
            "format": "kora-semantic-head/1", "classes": list(self.classes), "features": list(FEATURE_NAMES),
            "inputs": "minilm(header) | minilm(header + values) | features", "meta": self.meta,
            "mu": r(self.mu), "sd": r(self.sd), "b": r(self.b), "W": r(self.W)}, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path = ARTIFACT) -> LinearHead:
        d = json.loads(Path(path).read_text())
        if tuple(d["classes"]) != SEMANTIC_TYPES or tuple(d["features"]) != FEATURE_NAMES:
            raise ValueError(f"{path} was trained for other classes or features; run python -m checks.semantic.train")
        f = lambda k: np.asarray(d[k], dtype=np.float32)  # noqa: E731
        return cls(f("W"), f("b"), f("mu"), f("sd"), tuple(d["classes"]), d.get("meta", {}))


@functools.cache
def load_head() -> LinearHead | None:
    try:
        return LinearHead.load()
    except FileNotFoundError:
        log.warning("kora: no trained semantic head at %s (run python -m checks.semantic.train)", ARTIFACT)
    except Exception as exc:
        log.warning("kora: the semantic head at %s cannot be used: %s", ARTIFACT, exc)
    return None


class SemanticClassifier:
    """Classifies columns; ``None`` from ``get()`` when the model or the head is missing."""

    def __init__(self, encoder, head: LinearHead):
        self.encoder, self.head = encoder, head
        self._cache: dict[str, Prediction] = {}
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> SemanticClassifier | None:
        global _CLASSIFIER
        if _CLASSIFIER is None:
            from checks.semantic.encoder import get_encoder

            enc = get_encoder()
            head = load_head() if enc is not None else None
            if enc is None or head is None:
                return None
            _CLASSIFIER = cls(enc, head)
        return _CLASSIFIER

    def predict(self, profiles: list[ColumnProfile]) -> list[Prediction]:
        """One prediction per profile; columns already seen come from the cache."""
        keys = [p.key() for p in profiles]
        with self._lock:
            todo = [(i, p) for i, (p, k) in enumerate(zip(profiles, keys)) if k not in self._cache]
            if todo:
                X = embed_inputs(self.encoder, [p for _, p in todo])
                P = self.head.proba(X, [p.ktype for _, p in todo])
                for (i, p), row in zip(todo, P):
                    j = int(row.argmax())
                    self._cache[keys[i]] = Prediction(SEMANTIC_TYPES[j], float(row[j]),
                                                      {t: float(x) for t, x in zip(SEMANTIC_TYPES, row) if x >= 0.005})
            return [self._cache[k] for k in keys]


_CLASSIFIER: SemanticClassifier | None = None
