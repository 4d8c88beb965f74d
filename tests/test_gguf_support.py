"""The GGUF check (support.py) and the recipe: fast, JSON-only, no heavy libraries."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from pathlib import Path

import pytest
from step_runner import run_step

from edgebuild.steps.base import StepFailed
from edgebuild.steps.gguf import STEPS
from edgebuild.steps.gguf.support import check_model_folder

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "models" / "tiny-llama"


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    shutil.copytree(TINY, dest)
    return dest


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_demo_model_is_supported_and_small():
    assert check_model_folder(TINY) == []
    size = sum(f.stat().st_size for f in TINY.rglob("*") if f.is_file())
    assert size <= 3.2e6, f"models/tiny-llama is {size / 1e6:.1f} MB; keep the committed demo small"


def test_importing_the_steps_pulls_in_no_heavy_library():
    code = (
        "import sys, edgebuild.steps.gguf; heavy = [m for m in ('numpy', 'gguf', 'torch', 'llama_cpp', "
        "'transformers') if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"model_type": "gpt_neox"}, "config.json:model_type"),
        ({"hidden_act": "gelu"}, "config.json:hidden_act"),
        (
            {"rope_parameters": {"rope_type": "longrope", "rope_theta": 10000.0}},
            "config.json:rope_parameters.rope_type",
        ),
        (
            {"rope_parameters": None, "rope_theta": 1e4, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
            "config.json:rope_scaling.rope_type",
        ),
        ({"num_key_value_heads": 3}, "config.json:num_key_value_heads"),
    ],
)
def test_unsupported_config_fields_are_named(tiny_copy: Path, edit: dict, field: str):
    _edit_json(tiny_copy / "config.json", **edit)
    problems = check_model_folder(tiny_copy)
    assert [p["field"] for p in problems] == [field], problems


def test_unsupported_tokenizers_are_named(tiny_copy: Path):
    tok_path = tiny_copy / "tokenizer.json"
    tok = json.loads(tok_path.read_text())
    tok["pre_tokenizer"] = {"type": "Whitespace"}
    tok_path.write_text(json.dumps(tok))
    assert [p["field"] for p in check_model_folder(tiny_copy)] == ["tokenizer.json:pre_tokenizer"]

    tok["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    tok_path.write_text(json.dumps(tok))
    assert [p["field"] for p in check_model_folder(tiny_copy)] == [
        "tokenizer.json:pre_tokenizer.pretokenizers[0].pattern"
    ]

    tok["model"] = {"type": "Unigram", "vocab": []}
    tok_path.write_text(json.dumps(tok))
    assert [p["field"] for p in check_model_folder(tiny_copy)] == ["tokenizer.json:model.type"]

    tok_path.unlink()
    assert [p["field"] for p in check_model_folder(tiny_copy)] == ["tokenizer.json"]


def test_known_pre_tokenizers_are_recognised():
    from edgebuild.steps.gguf.support import LLAMA3_REGEX, QWEN2_REGEX, byte_level_pre_tokenizer

    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    split = lambda rx: {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False}  # noqa: E731
    assert byte_level_pre_tokenizer({**byte_level, "use_regex": True}) == "gpt-2"
    assert (
        byte_level_pre_tokenizer({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), byte_level]})
        == "llama-bpe"
    )
    assert (
        byte_level_pre_tokenizer({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), byte_level]})
        == "qwen2"
    )
    assert (
        byte_level_pre_tokenizer(
            {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": True},
                    {**byte_level, "use_regex": True},
                ],
            }
        )
        == "smollm"
    )


def test_check_step_fails_with_the_field(tiny_copy: Path, tmp_path: Path):
    _edit_json(tiny_copy / "config.json", model_type="mamba")
    out = tmp_path / "out"
    with pytest.raises(StepFailed, match="config.json:model_type: 'mamba' is not supported"):
        run_step("gguf.check", out, {"model": tiny_copy})
    assert json.loads((out / "support.json").read_text())["supported"] is False


def test_missing_weights_and_config_are_reported(tmp_path: Path):
    assert check_model_folder(tmp_path / "nowhere")[0]["field"] == "source"
    assert check_model_folder(tmp_path)[0]["field"] == "config.json"


def test_recipe_is_consistent():
    recipe = tomllib.loads((REPO / "recipes" / "gguf.toml").read_text())
    from edgebuild.steps.gguf.quantize import LLAMA_CPP_TYPES

    choices = recipe["choices"]["quantization"]
    assert recipe["recipe"]["runtime"] == "llama.cpp"
    assert set(choices) == set(recipe["parameters"]["thresholds"]) == set(LLAMA_CPP_TYPES)
    assert recipe["parameters"]["quantization"] in choices
    ids = {s["id"]: s for s in recipe["steps"]}
    for step in recipe["steps"]:
        assert step["step"] in STEPS, step
    # the shared F16 intermediate must not depend on the target's quantization
    assert "{quantization}" not in json.dumps(ids["convert"]["params"])
    assert ids["quantize"]["inputs"]["model"] == "convert.model.gguf"
    # every quantization reaches exactly one artifact step and one verify step
    for level in choices:
        included = [s for s in recipe["steps"] if level in s.get("when", {}).get("quantization", [level])]
        assert sum(1 for s in included if "artifact" in s) == 1, level
        assert sum(1 for s in included if s["step"] == "gguf.verify") == 1, level
