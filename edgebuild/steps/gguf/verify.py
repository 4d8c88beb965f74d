"""Run a GGUF artifact in llama.cpp and compare it with transformers on the same prompts.

Decoders: both models get transformers' token ids for each prompt; we compare the last token's logits
(cosine, max abs difference) and the argmax at every position. Encoders: pooled embeddings (cosine).
Tokenization is compared separately, since a tokenizer mismatch breaks a model as surely as bad
weights do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgebuild.steps.base import StepFailed


@dataclass
class Comparison:
    metrics: dict[str, Any]
    selftest: dict[str, Any]  # arrays for selftest.npz
    io: dict[str, Any]
    token_mismatches: list[str] = field(default_factory=list)


def _llama_tokens(llm, prompt: str) -> list[int]:
    # add_bos=True means "add the special tokens this vocab is configured to add"
    return list(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))


def _prompt_latency(run_once, tokens: int, threads: int) -> dict[str, Any]:
    """Wall time to process the first prompt (decoders: prefill; encoders: one embedding), after
    warm-up, with llama.cpp's thread count, and the resulting tokens per second at the median."""
    from edgebuild.metrics import latency

    figures = latency(run_once, warmup=3, runs=50, budget_s=5.0)
    figures.update(threads=threads, tokens=tokens, tokens_per_s=tokens / (figures["p50_ms"] / 1000.0))
    return figures


def compare_decoder(gguf_path: Path, source: Path, prompts: list[str], threads: int = 2) -> Comparison:
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgebuild.metrics import deviation

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, local_files_only=True).eval()
    token_lists = [tokenizer(p)["input_ids"] for p in prompts]
    if any(len(t) < 2 for t in token_lists):
        raise StepFailed("param prompts: every prompt must tokenize to at least 2 tokens")
    n_ctx = max(64, max(len(t) for t in token_lists) + 8)
    llm = llama_cpp.Llama(
        str(gguf_path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False, n_threads=threads, seed=0
    )
    cosines, max_diffs, agree, total, mismatches = [], [], 0, 0, []
    first_logits = None
    for prompt, ids in zip(prompts, token_lists):
        if _llama_tokens(llm, prompt) != list(ids):
            mismatches.append(prompt)
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([ids])).logits[0].numpy().astype(np.float32)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)], dtype=np.float32)
        last = deviation(ref[-1], got[-1])
        cosines.append(last["cosine"])
        max_diffs.append(last["max_abs"])
        agree += int(np.sum(ref.argmax(-1) == got.argmax(-1)))
        total += len(ids)
        if first_logits is None:
            first_logits = got[-1].copy()
    speed = _prompt_latency(lambda: (llm.reset(), llm.eval(token_lists[0])), len(token_lists[0]), threads)
    llm.close()
    vocab = int(first_logits.shape[0])
    metrics = {
        "cosine_min": min(cosines),
        "cosine_mean": float(np.mean(cosines)),
        "argmax_agreement": agree / total,
        "max_abs_diff": max(max_diffs),
        "tokenizer_match": not mismatches,
        "prompts": len(prompts),
        "positions": total,
        "latency": speed,
    }
    selftest = {"input.tokens": np.asarray(token_lists[0], dtype=np.int32), "expected.logits": first_logits}
    io = {
        "inputs": [{"name": "tokens", "shape": [-1], "dtype": "int32"}],
        "outputs": [{"name": "logits", "shape": [-1, vocab], "dtype": "float32"}],
    }
    return Comparison(metrics, selftest, io, mismatches)


def compare_encoder(gguf_path: Path, source: Path, prompts: list[str], threads: int = 2) -> Comparison:
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from edgebuild.metrics import cosine
    from edgebuild.steps.gguf.bert_arch import EncoderLayout
    from edgebuild.steps.gguf.hf_folder import ModelFolder
    import gguf

    cls_pooling = EncoderLayout(ModelFolder(source)).pooling() == gguf.PoolingType.CLS
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    model = AutoModel.from_pretrained(source, dtype=torch.float32, local_files_only=True).eval()
    llm = llama_cpp.Llama(
        str(gguf_path), embedding=True, n_ctx=512, n_batch=512, verbose=False, n_threads=threads, seed=0
    )
    cosines, mismatches, first = [], [], None
    first_ids = None
    for prompt in prompts:
        batch = tokenizer(prompt, return_tensors="pt")
        ids = batch["input_ids"][0].tolist()
        if _llama_tokens(llm, prompt) != ids:
            mismatches.append(prompt)
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state[0].numpy()
        ref = hidden[0] if cls_pooling else hidden.mean(axis=0)
        got = np.asarray(llm.embed(prompt), dtype=np.float32).reshape(-1)
        cosines.append(cosine(ref, got))
        if first is None:
            first, first_ids = got, ids
    speed = _prompt_latency(lambda: llm.embed(prompts[0]), len(first_ids), threads)
    llm.close()
    metrics = {
        "cosine_min": min(cosines),
        "cosine_mean": float(np.mean(cosines)),
        "tokenizer_match": not mismatches,
        "prompts": len(prompts),
        "latency": speed,
    }
    selftest = {"input.tokens": np.asarray(first_ids, dtype=np.int32), "expected.embedding": first}
    io = {
        "inputs": [{"name": "tokens", "shape": [-1], "dtype": "int32"}],
        "outputs": [{"name": "embedding", "shape": [int(first.shape[0])], "dtype": "float32"}],
    }
    return Comparison(metrics, selftest, io, mismatches)


def thresholds_for(params: dict[str, Any]) -> dict[str, float]:
    """The level's thresholds from the recipe table, with the target's overrides on top."""
    level = params.get("quantization", "F16")
    table = params.get("thresholds") or {}
    if level not in table:
        raise StepFailed(f"param thresholds: no entry for quantization {level!r} (add thresholds.{level})")
    limits = {k: float(v) for k, v in table[level].items()}
    for key in ("min_cosine", "min_argmax_agreement"):
        value = params.get(key, -1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise StepFailed(f"param {key}: {value!r} is not a number")
        if value >= 0:  # negative = keep the level's value from the table
            limits[key] = float(value)
    return limits


def judge(
    comparison: Comparison, limits: dict[str, float], level: str, require_tokenizer_match: bool
) -> None:
    """Raise StepFailed, with the figures, when the artifact misses a threshold."""
    m = comparison.metrics
    misses = []
    if m["cosine_min"] < limits.get("min_cosine", 0.0):
        misses.append(f"cosine_min {m['cosine_min']:.6f} < {limits['min_cosine']}")
    if "argmax_agreement" in m and m["argmax_agreement"] < limits.get("min_argmax_agreement", 0.0):
        misses.append(f"argmax_agreement {m['argmax_agreement']:.4f} < {limits['min_argmax_agreement']}")
    if require_tokenizer_match and comparison.token_mismatches:
        misses.append(
            f"llama.cpp tokenizes {len(comparison.token_mismatches)} prompt(s) differently from "
            f"transformers, e.g. {comparison.token_mismatches[0][:40]!r}"
        )
    if misses:
        raise StepFailed(f"GGUF {level} misses its verification thresholds: " + "; ".join(misses))
