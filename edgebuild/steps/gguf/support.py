"""What the GGUF converter supports, checked from a model folder's JSON files alone (no weights read,
no heavy imports), so `edgebuild check` can reject a model before anything is converted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# config.json model_type -> (family, llama.cpp architecture)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "llama": ("decoder", "llama"),
    "mistral": ("decoder", "llama"),
    "qwen2": ("decoder", "qwen2"),
    "bert": ("encoder", "bert"),
}
ROPE_TYPES = ("default", "linear", "yarn", "llama3")
DECODER_ACTIVATIONS = ("silu",)
ENCODER_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh")

# Pre-tokenizer regexes llama.cpp implements natively, as written in tokenizer.json `Split` steps
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TokenizerChoice:
    model: str  # tokenizer.ggml.model: "gpt2" (byte-level BPE), "llama" (SentencePiece), "bert" (WordPiece)
    pre: str  # tokenizer.ggml.pre


class Unsupported(Exception):
    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Unsupported(path.name, f"not valid JSON ({exc})") from None


def rope_settings(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE theta and scaling from either transformers 5's `rope_parameters` or the older
    `rope_theta` + `rope_scaling` pair, as one dict with `rope_type` and `rope_theta`."""
    params = dict(config.get("rope_parameters") or {})
    legacy = config.get("rope_scaling") or {}
    for key, value in legacy.items():
        params.setdefault(key, value)
    params.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    return params


def classify_tokenizer(folder: Path, family: str) -> TokenizerChoice:
    """Which llama.cpp tokenizer reproduces this folder's tokenizer; raises Unsupported."""
    tok = _read_json(folder / "tokenizer.json")
    if family == "encoder":
        if tok is None:
            raise Unsupported("tokenizer.json", "missing (BERT encoders need the WordPiece tokenizer.json)")
        if tok.get("model", {}).get("type") != "WordPiece":
            raise Unsupported(
                "tokenizer.json:model.type",
                f"{tok.get('model', {}).get('type')!r} is not supported for encoders (only WordPiece)",
            )
        return TokenizerChoice("bert", "default")
    if (folder / "tokenizer.model").is_file():
        if (
            tok is not None
            and tok.get("model", {}).get("type") == "BPE"
            and not tok["model"].get("byte_fallback", False)
        ):
            pass  # a byte-level BPE tokenizer.json wins over a stray tokenizer.model
        else:
            return TokenizerChoice("llama", "default")
    if tok is None:
        raise Unsupported(
            "tokenizer.json",
            "missing (need a byte-level BPE tokenizer.json or a SentencePiece tokenizer.model)",
        )
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise Unsupported(
            "tokenizer.json:model.type",
            f"{model.get('type')!r} is not supported (byte-level BPE, or SentencePiece with tokenizer.model)",
        )
    if model.get("byte_fallback"):
        raise Unsupported(
            "tokenizer.model",
            "missing: a SentencePiece-style tokenizer (byte_fallback BPE) "
            "needs tokenizer.model for its scores",
        )
    return TokenizerChoice("gpt2", byte_level_pre_tokenizer(tok.get("pre_tokenizer")))


def byte_level_pre_tokenizer(pre: dict[str, Any] | None) -> str:
    """Map a tokenizer.json pre_tokenizer to the llama.cpp pre-tokenizer that splits text the same way."""
    field = "tokenizer.json:pre_tokenizer"
    if not pre:
        raise Unsupported(field, "missing (byte-level BPE needs a ByteLevel pre-tokenizer)")
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    last = steps[-1] if steps else {}
    if kinds[-1:] != ["ByteLevel"]:
        raise Unsupported(field, f"sequence {kinds} does not end with ByteLevel (not byte-level BPE)")
    if last.get("add_prefix_space"):
        raise Unsupported(field + ".add_prefix_space", "true is not supported by llama.cpp's BPE tokenizer")
    uses_regex = last.get("use_regex", True)
    if kinds == ["ByteLevel"] and uses_regex:
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and uses_regex and steps[0].get("individual_digits"):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not uses_regex:
        regex = steps[0].get("pattern", {}).get("Regex")
        if regex == LLAMA3_REGEX:
            return "llama-bpe"
        if regex == QWEN2_REGEX:
            return "qwen2"
        raise Unsupported(
            field + ".pretokenizers[0].pattern",
            "split regex is not one llama.cpp implements (known: gpt-2, llama3, qwen2, smollm)",
        )
    raise Unsupported(
        field, f"sequence {kinds} matches no llama.cpp pre-tokenizer (known: gpt-2, llama3, qwen2, smollm)"
    )


def _check_decoder(config: dict[str, Any]) -> list[dict[str, str]]:
    problems = []
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if not isinstance(config.get(key), int):
            problems.append({"field": f"config.json:{key}", "problem": "missing or not an integer"})
    act = config.get("hidden_act", "silu")
    if act not in DECODER_ACTIVATIONS:
        problems.append(
            {
                "field": "config.json:hidden_act",
                "problem": f"{act!r} is not supported (llama.cpp Llama-family graphs use silu)",
            }
        )
    rope = rope_settings(config)
    if rope["rope_type"] not in ROPE_TYPES:
        key = "rope_parameters" if config.get("rope_parameters") else "rope_scaling"
        problems.append(
            {
                "field": f"config.json:{key}.rope_type",
                "problem": f"{rope['rope_type']!r} is not supported (supported: {', '.join(ROPE_TYPES)})",
            }
        )
    if config.get("attention_bias") and config.get("model_type") != "qwen2":
        problems.append(
            {
                "field": "config.json:attention_bias",
                "problem": "attention biases are only supported for qwen2",
            }
        )
    heads, kv = (
        config.get("num_attention_heads"),
        config.get("num_key_value_heads", config.get("num_attention_heads")),
    )
    if isinstance(heads, int) and isinstance(kv, int) and (kv <= 0 or heads % kv):
        problems.append(
            {
                "field": "config.json:num_key_value_heads",
                "problem": f"{kv} does not divide num_attention_heads {heads}",
            }
        )
    return problems


def _check_encoder(config: dict[str, Any]) -> list[dict[str, str]]:
    problems = []
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if not isinstance(config.get(key), int):
            problems.append({"field": f"config.json:{key}", "problem": "missing or not an integer"})
    act = config.get("hidden_act", "gelu")
    if act not in ENCODER_ACTIVATIONS:
        problems.append(
            {"field": "config.json:hidden_act", "problem": f"{act!r} is not supported for BERT (gelu)"}
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        problems.append(
            {
                "field": "config.json:position_embedding_type",
                "problem": f"{config['position_embedding_type']!r} is not supported (absolute only)",
            }
        )
    return problems


def check_model_folder(path: Path) -> list[dict[str, str]]:
    """Problems that stop this folder from converting to GGUF; an empty list means supported.
    Each problem is {"field": "<file>:<key>", "problem": "<what is wrong>"}."""
    path = Path(path)
    if not path.is_dir():
        return [
            {"field": "source", "problem": f"{path} is not a folder (GGUF needs a Hugging Face model folder)"}
        ]
    try:
        config = _read_json(path / "config.json")
    except Unsupported as exc:
        return [{"field": exc.field, "problem": exc.problem}]
    if config is None:
        return [{"field": "config.json", "problem": f"missing in {path}"}]
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        return [
            {
                "field": "config.json:model_type",
                "problem": f"{model_type!r} is not supported (supported: {', '.join(sorted(ARCHITECTURES))})",
            }
        ]
    family, _ = ARCHITECTURES[model_type]
    problems = _check_decoder(config) if family == "decoder" else _check_encoder(config)
    try:
        classify_tokenizer(path, family)
    except Unsupported as exc:
        problems.append({"field": exc.field, "problem": exc.problem})
    if not (path / "model.safetensors.index.json").is_file() and not any(path.glob("*.safetensors")):
        problems.append({"field": "model.safetensors", "problem": "no safetensors weights in the folder"})
    return problems
