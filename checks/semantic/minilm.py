"""The shipped MiniLM checkpoint's forward pass, in plain torch.

The checkpoint is a 6-layer BERT (its ``config.json``). transformers' ``BertModel`` runs it
too, but importing transformers' modelling code pulls in ``torch.distributed``, dynamo and
sympy: 3 CPU-s and ~220 MiB in every process that scores a column (the migration's
coordinator among them, on a CPU-bound 2-core machine), for a few matrix products. The
weights are the checkpoint's own safetensors; the tokenizer is its own ``tokenizer.json``
run by ``tokenizers``, the library transformers' fast tokenizer wraps. The vectors equal
transformers' to float rounding (``tests/test_semantic_model.py`` compares them where
transformers is installed), so the classifier head and the anomaly thresholds hold.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F


class MiniLM:
    """Token ids in, last hidden states out (BERT, post-norm, exact GELU, absolute positions)."""

    def __init__(self, path: Path, device: str = "cpu"):
        from safetensors.torch import load_file

        cfg = json.loads((path / "config.json").read_text())
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act") != "gelu":
            raise RuntimeError(f"{path} is not the BERT checkpoint this forward pass implements")
        w = {k.removeprefix("bert."): v.float().to(device) for k, v in load_file(str(path / "model.safetensors")).items()}
        self.heads, self.eps = int(cfg["num_attention_heads"]), float(cfg["layer_norm_eps"])
        self.word, self.pos = w["embeddings.word_embeddings.weight"], w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [_Layer(w, f"encoder.layer.{i}.") for i in range(int(cfg["num_hidden_layers"]))]

    @property
    def device(self) -> torch.device:
        return self.word.device

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.word[ids] + self.pos[: ids.shape[1]] + self.type0
        x = F.layer_norm(x, x.shape[-1:], *self.emb_norm, self.eps)
        keep = mask.bool()[:, None, None, :]  # padded keys take no attention
        for layer in self.layers:
            x = layer(x, keep, self.heads, self.eps)
        return x


class _Layer:
    def __init__(self, w: dict, p: str):
        a = p + "attention.self."
        self.qkv_w = torch.cat([w[a + n + ".weight"] for n in ("query", "key", "value")])
        self.qkv_b = torch.cat([w[a + n + ".bias"] for n in ("query", "key", "value")])
        self.out = (w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
        self.norm1 = (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        self.up = (w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"])
        self.down = (w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        self.norm2 = (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])

    def __call__(self, x: torch.Tensor, keep: torch.Tensor, heads: int, eps: float) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = F.linear(x, self.qkv_w, self.qkv_b).view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).transpose(1, 2).reshape(b, n, d)
        x = F.layer_norm(x + F.linear(ctx, *self.out), (d,), *self.norm1, eps)
        return F.layer_norm(x + F.linear(F.gelu(F.linear(x, *self.up)), *self.down), (d,), *self.norm2, eps)


class Tokens:
    """The checkpoint's own tokenizer (lower-casing WordPiece, ``[CLS] ... [SEP]``): a batch
    padded to its longest text, each text cut at ``max_length`` tokens, specials included."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tok.enable_padding(pad_id=self.tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        self.max_length = 0

    def __call__(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if max_length != self.max_length:  # the callers hold the encoder's lock
            self.tok.enable_truncation(max_length=max_length)
            self.max_length = max_length
        enc = self.tok.encode_batch(texts)
        return (torch.tensor([e.ids for e in enc], dtype=torch.long),
                torch.tensor([e.attention_mask for e in enc], dtype=torch.long))
