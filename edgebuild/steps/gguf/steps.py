"""The GGUF step kinds: check, convert (to a shared F16/F32/BF16/Q8_0 file), quantize, verify.

Only the standard library at module level: each `run` imports the converter, gguf, llama_cpp,
torch and transformers when it runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgebuild.npzfile import save_npz
from edgebuild.steps.base import Step, StepContext, StepFailed

_TOOLKIT = ("gguf", "numpy", "sentencepiece")
_RUNTIME = ("gguf", "llama-cpp-python")
_REFERENCE = ("gguf", "llama-cpp-python", "transformers", "torch", "tokenizers", "numpy")


def _io_from_gguf(path: Path) -> dict[str, Any]:
    """Artifact I/O from the file itself: token ids in, logits (decoders) or an embedding (encoders) out."""
    from gguf import GGUFReader

    fields = GGUFReader(path).fields

    def value(key: str):
        f = fields.get(key)
        if f is None:
            return None
        part = f.parts[f.data[0]]
        return bytes(part).decode() if f.types and f.types[0].name == "STRING" else part[0].item()

    arch = value("general.architecture")
    vocab = value(f"{arch}.vocab_size") or len(fields["tokenizer.ggml.tokens"].data)
    inputs = [{"name": "tokens", "shape": [-1], "dtype": "int32"}]
    if arch == "bert":
        outputs = [{"name": "embedding", "shape": [value("bert.embedding_length")], "dtype": "float32"}]
    else:
        outputs = [{"name": "logits", "shape": [-1, int(vocab)], "dtype": "float32"}]
    return {"inputs": inputs, "outputs": outputs}


class GgufCheckStep(Step):
    """Fail early, naming the field, when the folder's architecture or tokenizer is unsupported."""

    name = "gguf.check"
    version = "1"
    inputs = ("model",)
    outputs = ("support.json",)
    reports_coverage = True

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from edgebuild.steps.gguf.support import check_model_folder

        problems = check_model_folder(ctx.input("model"))
        report = {"supported": not problems, "problems": problems}
        ctx.output("support.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        if problems:
            error = StepFailed("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
            error.metadata = {
                "coverage": {"route": "gguf", "supported": False, "problems": problems, "summary": str(error)}
            }
            raise error
        config = json.loads((ctx.input("model") / "config.json").read_text())
        return {
            "coverage": {
                "route": "gguf",
                "supported": True,
                "unsupported": [],
                "problems": [],
                "summary": f"architecture '{config.get('model_type')}' and its tokenizer are "
                f"supported by the GGUF converter",
            }
        }


class GgufConvertStep(Step):
    """Hugging Face folder -> GGUF (F32, F16, BF16 or Q8_0), streamed one tensor at a time."""

    name = "gguf.convert"
    version = "1"
    uses = _TOOLKIT
    inputs = ("model",)
    outputs = ("model.gguf",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from edgebuild.steps.gguf.convert import convert_folder

        outtype = str(ctx.params.get("outtype", "F16"))
        summary = convert_folder(
            ctx.input("model"),
            ctx.output("model.gguf"),
            outtype,
            name=str(ctx.params.get("name", "")),
            metadata=ctx.params.get("metadata") or {},
        )
        size = ctx.output("model.gguf").stat().st_size
        return {
            "io": _io_from_gguf(ctx.output("model.gguf")),
            "quantization": outtype,
            "conversion": summary,
            "metrics": {
                "size_bytes": size,
                "bits_per_weight": round(8 * size / max(summary["n_params"], 1), 3),
            },
        }


class GgufQuantizeStep(Step):
    """F16 GGUF -> the target's llama.cpp quantization (F16 itself is passed through unchanged)."""

    name = "gguf.quantize"
    version = "1"
    uses = _RUNTIME
    inputs = ("model",)
    outputs = ("model.gguf",)

    def run(self, ctx: StepContext) -> dict[str, Any]:
        from edgebuild.steps.gguf.quantize import quantize_file

        level = str(ctx.params.get("quantization", ""))
        quantize_file(
            ctx.input("model"), ctx.output("model.gguf"), level, threads=int(ctx.params.get("threads", 0))
        )
        size = ctx.output("model.gguf").stat().st_size
        n_params = (ctx.upstream.get("model") or {}).get("conversion", {}).get("n_params")
        metrics = {"size_bytes": size}
        if n_params:
            metrics["bits_per_weight"] = round(8 * size / n_params, 3)
        return {"io": _io_from_gguf(ctx.output("model.gguf")), "quantization": level, "metrics": metrics}


class GgufVerifyStep(Step):
    """Compare the artifact in llama.cpp against transformers; a threshold miss fails the target."""

    name = "gguf.verify"
    version = "3"
    uses = _REFERENCE
    inputs = ("gguf", "model")
    outputs = ("selftest.npz", "verify.json")

    def run(self, ctx: StepContext) -> dict[str, Any]:
        import numpy as np

        from edgebuild.steps.gguf.support import ARCHITECTURES
        from edgebuild.steps.gguf.verify import compare_decoder, compare_encoder, judge, thresholds_for

        source = ctx.input("model")
        prompts = ctx.params.get("prompts") or []
        if not prompts or not all(isinstance(p, str) and p for p in prompts):
            raise StepFailed("param prompts: give a list of non-empty strings")
        level = str(ctx.params.get("quantization", "F16"))
        limits = thresholds_for(ctx.params)
        model_type = json.loads((Path(source) / "config.json").read_text(encoding="utf-8")).get("model_type")
        family = ARCHITECTURES.get(model_type, ("decoder",))[0]
        compare = compare_encoder if family == "encoder" else compare_decoder
        result = compare(ctx.input("gguf"), source, prompts, threads=int(ctx.params.get("threads", 2)))
        expected_key = "expected.embedding" if family == "encoder" else "expected.logits"
        expected = result.selftest[expected_key]
        # The self-test reruns this artifact in llama.cpp elsewhere: expect the figures seen here,
        # with room for another CPU's SIMD kernels
        selftest = dict(result.selftest)
        selftest["atol"] = np.asarray(max(1e-3, 0.02 * float(np.max(np.abs(expected)))), dtype=np.float32)
        selftest["rtol"] = np.asarray(0.01, dtype=np.float32)
        selftest["min_cosine"] = np.asarray(0.999, dtype=np.float32)
        save_npz(ctx.output("selftest.npz"), selftest)  # deterministic bytes: bundles must reproduce
        report = {
            "quantization": level,
            "thresholds": limits,
            "metrics": result.metrics,
            "token_mismatches": result.token_mismatches,
        }
        ctx.output("verify.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        judge(result, limits, level, bool(ctx.params.get("require_tokenizer_match", True)))
        return {"io": result.io, "metrics": result.metrics, "thresholds": limits, "quantization": level}
