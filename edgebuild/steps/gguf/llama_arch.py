"""Llama-family decoders (Llama, Mistral, SmolLM, Qwen2) as llama.cpp's `llama` and `qwen2` graphs."""

from __future__ import annotations

import math
from typing import Any

import gguf
import numpy as np

from edgebuild.steps.base import StepFailed
from edgebuild.steps.gguf.hf_folder import ModelFolder
from edgebuild.steps.gguf.layout import PlannedTensor
from edgebuild.steps.gguf.support import ARCHITECTURES, rope_settings

_ARCH_ENUM = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}
# HF tensors that carry nothing llama.cpp needs
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class DecoderLayout:
    def __init__(self, folder: ModelFolder):
        self.folder = folder
        cfg = self.config = folder.config
        self.arch = ARCHITECTURES[cfg["model_type"]][1]
        self.n_head = cfg["num_attention_heads"]
        self.n_kv_head = cfg.get("num_key_value_heads") or self.n_head
        self.hidden = cfg["hidden_size"]
        self.head_dim = cfg.get("head_dim") or self.hidden // self.n_head
        self.n_layer = cfg["num_hidden_layers"]
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        self.rope = rope_settings(cfg)

    # --- keys ------------------------------------------------------------------------------
    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        cfg = self.config
        w.add_context_length(cfg.get("max_position_embeddings", 2048))
        w.add_embedding_length(self.hidden)
        w.add_block_count(self.n_layer)
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_kv_head)
        w.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
        w.add_rope_dimension_count(self.head_dim)
        if self.head_dim != self.hidden // self.n_head:
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
        w.add_rope_freq_base(float(self.rope["rope_theta"]))
        w.add_vocab_size(cfg["vocab_size"])
        kind = self.rope["rope_type"]
        if kind in ("linear", "yarn"):
            w.add_rope_scaling_type(
                gguf.RopeScalingType.LINEAR if kind == "linear" else gguf.RopeScalingType.YARN
            )
            w.add_rope_scaling_factor(float(self.rope["factor"]))
            if kind == "yarn":
                original = self.rope.get("original_max_position_embeddings") or cfg.get(
                    "max_position_embeddings"
                )
                w.add_rope_scaling_orig_ctx_len(int(original))

    # --- tensors ---------------------------------------------------------------------------
    def tensors(self) -> list[PlannedTensor]:
        names = gguf.get_tensor_name_map(_ARCH_ENUM[self.arch], self.n_layer)
        plan = []
        for hf_name, entry in self.folder.iter_tensors():
            if hf_name.endswith(_IGNORED_SUFFIXES):
                continue
            if self.tied and hf_name == "lm_head.weight":
                continue  # llama.cpp reuses token_embd when output.weight is absent
            gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise StepFailed(
                    f"{entry.file.name}: tensor {hf_name!r} has no llama.cpp {self.arch} equivalent"
                )
            plan.append(
                PlannedTensor(gguf_name, entry.shape, self._loader(hf_name), keep_f32=len(entry.shape) == 1)
            )
        if self.rope["rope_type"] == "llama3":
            factors = llama3_rope_factors(self.rope, self.head_dim)
            plan.append(
                PlannedTensor(
                    gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight",
                    factors.shape,
                    lambda: factors,
                    keep_f32=True,
                )
            )
        return plan

    def _loader(self, hf_name: str):
        def load() -> np.ndarray:
            data = self.folder.load(hf_name).astype(np.float32, copy=False)
            # llama.cpp's `llama` graph rotates adjacent pairs; HF rotates the two halves of each head.
            # Reorder Q and K rows so both compute the same thing (`qwen2` uses the HF order as is).
            if self.arch == "llama" and ".self_attn.q_proj." in hf_name:
                return _interleave_rope_rows(data, self.n_head)
            if self.arch == "llama" and ".self_attn.k_proj." in hf_name:
                return _interleave_rope_rows(data, self.n_kv_head)
            return data

        return load


def _interleave_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(rope: dict[str, Any], head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's RoPE scaling (the `rope_freqs` tensor llama.cpp reads)."""
    base = float(rope["rope_theta"])
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * base ** (i / head_dim)
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)
