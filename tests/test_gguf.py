"""GGUF end to end with the real tools: our converter, llama.cpp's quantizer (llama-cpp-python), and
llama.cpp running every artifact against transformers. Models: the committed tiny demo Llama
(GQA, untied, byte-level BPE, bf16), a second decoder trained here (no GQA, tied, SentencePiece,
linear RoPE scaling, sharded fp16), and all-MiniLM-L6-v2 (BERT encoder) from PyPI."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gguf", reason="the gguf extra is not installed")
pytest.importorskip("llama_cpp", reason="llama-cpp-python (gguf extra) is not installed")
pytest.importorskip("transformers", reason="transformers (gguf extra) is not installed")

from gguf import GGUFReader  # noqa: E402

from edgebuild.steps.base import StepFailed  # noqa: E402
from gguf_models import REPO, TINY_LLAMA, build_second_decoder, copy_folder, fetch_minilm  # noqa: E402
from step_runner import run_step  # noqa: E402

RECIPE = tomllib.loads((REPO / "recipes" / "gguf.toml").read_text())
DEFAULTS = RECIPE["parameters"]
ENCODER_PROMPTS = ["A man is playing a guitar.", "The new movie is awesome", "Edge devices run small models."]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def field_value(reader: GGUFReader, key: str):
    f = reader.fields[key]
    part = f.parts[f.data[0]]
    return bytes(part).decode() if f.types[0].name == "STRING" else part[0].item()


class Built:
    """Per model: the shared F16 file and each quantization made from it, built once."""

    def __init__(self, source: Path, root: Path, name: str):
        self.source, self.root, self.name = source, root, name
        self.meta: dict[str, dict] = {}
        self.f16 = self._convert("F16")

    def _convert(self, outtype: str) -> Path:
        out = self.root / f"convert-{outtype}"
        self.meta[f"convert-{outtype}"] = run_step(
            "gguf.convert", out, {"model": self.source}, {"name": self.name, "outtype": outtype}
        )
        return out / "model.gguf"

    def direct(self, outtype: str) -> Path:
        path = self.root / f"convert-{outtype}" / "model.gguf"
        return path if path.is_file() else self._convert(outtype)

    def quantized(self, level: str) -> Path:
        out = self.root / f"quantize-{level}"
        if not (out / "model.gguf").is_file():
            self.meta[level] = run_step("gguf.quantize", out, {"model": self.f16}, {"quantization": level})
        return out / "model.gguf"

    def verify(self, gguf_path: Path, level: str, prompts: list[str] | None = None, **overrides) -> dict:
        params = {
            "quantization": level,
            "prompts": prompts or DEFAULTS["prompts"],
            "thresholds": DEFAULTS["thresholds"],
            "min_cosine": -1.0,
            "min_argmax_agreement": -1.0,
            "require_tokenizer_match": True,
            **overrides,
        }
        out = self.root / f"verify-{gguf_path.parent.name}-{len(overrides)}"
        meta = run_step("gguf.verify", out, {"gguf": gguf_path, "model": self.source}, params)
        meta["selftest"] = dict(np.load(out / "selftest.npz"))
        return meta


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Built:
    return Built(TINY_LLAMA, tmp_path_factory.mktemp("gguf-tiny"), "tiny-llama")


@pytest.fixture(scope="session")
def second(tmp_path_factory) -> Built:
    pytest.importorskip("sentencepiece", reason="sentencepiece (gguf extra) is not installed")
    source = build_second_decoder(tmp_path_factory.mktemp("second-decoder") / "model")
    return Built(source, tmp_path_factory.mktemp("gguf-second"), "second-decoder")


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> Built:
    folder = fetch_minilm()
    if isinstance(folder, str):
        pytest.skip(f"all-MiniLM-L6-v2 unavailable: {folder}")
    return Built(folder, tmp_path_factory.mktemp("gguf-minilm"), "all-MiniLM-L6-v2")


# --- conversion --------------------------------------------------------------------------------


def test_same_model_converts_to_identical_bytes_whatever_the_folder_name(tiny: Built, tmp_path: Path):
    renamed = copy_folder(TINY_LLAMA, tmp_path / "some-other-folder-name")
    again = run_step(
        "gguf.convert", tmp_path / "again", {"model": renamed}, {"name": "tiny-llama", "outtype": "F16"}
    )
    assert sha256(tmp_path / "again" / "model.gguf") == sha256(tiny.f16)
    assert again["conversion"]["n_params"] == tiny.meta["convert-F16"]["conversion"]["n_params"]
    other_name = run_step(
        "gguf.convert", tmp_path / "named", {"model": renamed}, {"name": "renamed", "outtype": "F16"}
    )
    assert other_name["conversion"] == again["conversion"]
    assert sha256(tmp_path / "named" / "model.gguf") != sha256(tiny.f16)


def test_demo_metadata_carries_the_tokenizer_and_hyperparameters(tiny: Built):
    reader = GGUFReader(tiny.f16)
    config = json.loads((TINY_LLAMA / "config.json").read_text())
    tok = json.loads((TINY_LLAMA / "tokenizer.json").read_text())
    assert field_value(reader, "general.name") == "tiny-llama"
    assert field_value(reader, "general.architecture") == "llama"
    assert field_value(reader, "llama.attention.head_count_kv") == config["num_key_value_heads"] == 2
    assert field_value(reader, "llama.attention.head_count") == 4
    assert field_value(reader, "tokenizer.ggml.model") == "gpt2"
    assert field_value(reader, "tokenizer.ggml.pre") == "gpt-2"
    assert len(reader.fields["tokenizer.ggml.merges"].data) == len(tok["model"]["merges"])
    assert "messages" in field_value(reader, "tokenizer.chat_template")
    assert field_value(reader, "tokenizer.ggml.eos_token_id") == 0
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["output.weight"] == "F16" and types["token_embd.weight"] == "F16"  # untied: both present
    assert types["blk.0.attn_norm.weight"] == "F32"


def test_second_decoder_metadata(second: Built):
    reader = GGUFReader(second.f16)
    assert len(list(second.source.glob("model-*.safetensors"))) > 1  # really sharded
    assert field_value(reader, "tokenizer.ggml.model") == "llama"
    scores = reader.fields["tokenizer.ggml.scores"]
    assert (
        len({float(scores.parts[i][0]) for i in scores.data}) > 100
    )  # real SentencePiece scores (bytes share 0)
    assert field_value(reader, "llama.rope.scaling.type") == "linear"
    assert field_value(reader, "llama.rope.scaling.factor") == pytest.approx(2.0)
    assert field_value(reader, "llama.rope.freq_base") == pytest.approx(50000.0)
    assert (
        field_value(reader, "llama.attention.head_count_kv")
        == field_value(reader, "llama.attention.head_count")
        == 4
    )
    assert field_value(reader, "llama.attention.key_length") == 64  # head_dim != hidden / heads
    assert "output.weight" not in {t.name for t in reader.tensors}  # tied: llama.cpp reuses token_embd


def test_direct_q8_0_and_bf16_are_written_by_the_converter(tiny: Built):
    q8 = GGUFReader(tiny.direct("Q8_0"))
    assert {t.tensor_type.name for t in q8.tensors} == {"Q8_0", "F32"}
    bf16 = GGUFReader(tiny.direct("BF16"))
    assert {t.tensor_type.name for t in bf16.tensors} == {"BF16", "F32"}
    # the demo weights are bf16: BF16 output holds exactly the source bits
    from edgebuild.steps.gguf.hf_folder import ModelFolder

    source = ModelFolder(TINY_LLAMA).load("model.layers.1.mlp.down_proj.weight")
    written = next(t for t in bf16.tensors if t.name == "blk.1.ffn_down.weight")
    widened = (np.asarray(written.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(widened.reshape(source.shape), source)


def test_quantization_is_deterministic_and_shrinks(tiny: Built, tmp_path: Path):
    q4 = tiny.quantized("Q4_K_M")
    run_step("gguf.quantize", tmp_path / "q4", {"model": tiny.f16}, {"quantization": "Q4_K_M"})
    assert sha256(tmp_path / "q4" / "model.gguf") == sha256(q4)
    assert q4.stat().st_size < tiny.quantized("Q8_0").stat().st_size < tiny.f16.stat().st_size
    types = {t.tensor_type.name for t in GGUFReader(q4).tensors}
    assert "Q4_K" in types
    f16_copy = tiny.quantized("F16")
    assert sha256(f16_copy) == sha256(tiny.f16)


def test_unknown_quantization_is_a_clear_failure(tiny: Built, tmp_path: Path):
    with pytest.raises(StepFailed, match="param quantization: 'Q9_X' is not a llama.cpp type"):
        run_step("gguf.quantize", tmp_path, {"model": tiny.f16}, {"quantization": "Q9_X"})
    with pytest.raises(StepFailed, match="general.name must come from targets.toml"):
        run_step("gguf.convert", tmp_path / "c", {"model": TINY_LLAMA}, {"name": "", "outtype": "F16"})


# --- verification against transformers ---------------------------------------------------------


@pytest.mark.parametrize("level", ["F32", "F16", "Q8_0", "Q4_K_M"])
def test_demo_decoder_matches_transformers(tiny: Built, level: str):
    path = tiny.direct(level) if level == "F32" else tiny.quantized(level)
    meta = tiny.verify(path, level)
    m = meta["metrics"]
    limits = DEFAULTS["thresholds"][level]
    assert m["tokenizer_match"] is True
    assert (
        m["cosine_min"] >= limits["min_cosine"] and m["argmax_agreement"] >= limits["min_argmax_agreement"]
    ), m
    selftest = meta["selftest"]
    assert selftest["input.tokens"].dtype == np.int32
    assert selftest["expected.logits"].shape == (meta["io"]["outputs"][0]["shape"][1],)
    assert float(selftest["min_cosine"]) > 0.99 and float(selftest["atol"]) > 0


def test_precision_ordering_on_the_demo(tiny: Built):
    f32 = tiny.verify(tiny.direct("F32"), "F32")["metrics"]
    q4 = tiny.verify(tiny.quantized("Q4_K_M"), "Q4_K_M")["metrics"]
    assert f32["max_abs_diff"] < 0.01  # same graph, float32 both sides
    assert q4["max_abs_diff"] > f32["max_abs_diff"]


@pytest.mark.parametrize("level", ["F16", "Q8_0"])
def test_second_decoder_matches_transformers(second: Built, level: str):
    m = second.verify(second.quantized(level), level)["metrics"]
    assert m["tokenizer_match"] is True
    assert m["cosine_min"] >= DEFAULTS["thresholds"][level]["min_cosine"], m


def test_a_threshold_miss_fails_with_the_figures(tiny: Built):
    with pytest.raises(
        StepFailed, match=r"Q4_K_M misses its verification thresholds: cosine_min 0\.9\d+ < 1\.0"
    ):
        tiny.verify(tiny.quantized("Q4_K_M"), "Q4_K_M", min_cosine=1.0)
    with pytest.raises(StepFailed, match="no entry for quantization 'Q9'"):
        tiny.verify(tiny.f16, "Q9")


def test_a_broken_conversion_is_caught(tiny: Built, tmp_path: Path):
    """Skipping the Q/K row reordering keeps shapes valid but breaks attention: verify must see it."""
    from edgebuild.steps.gguf import llama_arch

    original = llama_arch._interleave_rope_rows
    llama_arch._interleave_rope_rows = lambda w, n_head: w
    try:
        run_step(
            "gguf.convert",
            tmp_path / "broken",
            {"model": TINY_LLAMA},
            {"name": "tiny-llama", "outtype": "F32"},
        )
    finally:
        llama_arch._interleave_rope_rows = original
    with pytest.raises(StepFailed, match="cosine_min"):
        tiny.verify(tmp_path / "broken" / "model.gguf", "F32")


@pytest.mark.parametrize("level", ["F16", "Q8_0", "Q4_K_M"])
def test_encoder_matches_sentence_transformers_pooling(minilm: Built, level: str):
    meta = minilm.verify(minilm.quantized(level), level, prompts=ENCODER_PROMPTS)
    m = meta["metrics"]
    assert m["tokenizer_match"] is True
    assert m["cosine_min"] >= DEFAULTS["thresholds"][level]["min_cosine"], m
    assert meta["selftest"]["expected.embedding"].shape == (384,)
    reader = GGUFReader(minilm.f16)
    assert field_value(reader, "general.architecture") == "bert"
    assert field_value(reader, "bert.pooling_type") == 1  # mean, from 1_Pooling/config.json
    assert field_value(reader, "tokenizer.ggml.model") == "bert"


def test_rope_scaling_variants_are_written(tmp_path: Path):
    """yarn becomes scaling keys; llama3 becomes the rope_freqs tensor, equal to transformers' own."""
    import torch  # noqa: F401  (transformers' RoPE helpers need it)
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    model = copy_folder(TINY_LLAMA, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    variants = {
        "yarn": {
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": 4.0,
            "original_max_position_embeddings": 128,
        },
        "llama3": {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    }
    readers = {}
    for kind, rope in variants.items():
        (model / "config.json").write_text(json.dumps({**config, "rope_parameters": rope}))
        run_step("gguf.convert", tmp_path / kind, {"model": model}, {"name": "t", "outtype": "F32"})
        readers[kind] = GGUFReader(tmp_path / kind / "model.gguf")
    assert field_value(readers["yarn"], "llama.rope.scaling.type") == "yarn"
    assert field_value(readers["yarn"], "llama.rope.scaling.factor") == pytest.approx(4.0)
    assert field_value(readers["yarn"], "llama.rope.scaling.original_context_length") == 128

    head_dim = config["hidden_size"] // config["num_attention_heads"]
    hf = LlamaConfig(**{**config, "rope_parameters": variants["llama3"]})
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](hf, "cpu")
    plain = 1.0 / (500000.0 ** (np.arange(0, head_dim, 2) / head_dim))
    freqs = next(t for t in readers["llama3"].tensors if t.name == "rope_freqs.weight")
    np.testing.assert_allclose(np.asarray(freqs.data), plain / scaled.numpy(), rtol=1e-5)
    assert "llama.rope.scaling.type" not in readers["llama3"].fields


def test_qwen2_decoder_with_attention_biases_matches_transformers(tmp_path: Path):
    """qwen2 keeps HF's rotary layout (no row reordering) and has q/k/v biases. Random weights,
    scaled up so logits are not flat; F32 only, where random weights are a fair test."""
    import shutil

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    source = tmp_path / "qwen2"
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    model.save_pretrained(source)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TINY_LLAMA / name, source / name)
    built = Built(source, tmp_path / "built", "qwen2-test")
    assert field_value(GGUFReader(built.f16), "general.architecture") == "qwen2"
    # transformers swaps in its Qwen2Tokenizer (own digit splitting) for a qwen2 config, so the
    # borrowed gpt-2 tokenizer.json tokenizes differently there: compare numerics only
    m = built.verify(built.direct("F32"), "F32", require_tokenizer_match=False)["metrics"]
    assert m["cosine_min"] >= 0.99999 and m["argmax_agreement"] >= 0.97, m
