"""Write a GGUF file from a Hugging Face folder, one tensor in memory at a time.

Tensor infos are declared first (shapes and types are known from the safetensors headers), then
the header is written and each tensor is loaded, transformed, encoded and appended in turn, so peak
memory is about the largest tensor, not the model. Everything written comes from the folder's
content and the given metadata: the same inputs give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import numpy as np

from edgebuild.steps.base import StepFailed
from edgebuild.steps.gguf.bert_arch import EncoderLayout
from edgebuild.steps.gguf.hf_folder import ModelFolder
from edgebuild.steps.gguf.layout import PlannedTensor
from edgebuild.steps.gguf.llama_arch import DecoderLayout
from edgebuild.steps.gguf.support import ARCHITECTURES, Unsupported, check_model_folder, classify_tokenizer
from edgebuild.steps.gguf.tokenizer_meta import write_tokenizer

Q = gguf.GGMLQuantizationType
DIRECT_TYPES = {"F32": Q.F32, "F16": Q.F16, "BF16": Q.BF16, "Q8_0": Q.Q8_0}
FILE_TYPES = {
    "F32": gguf.LlamaFileType.ALL_F32,
    "F16": gguf.LlamaFileType.MOSTLY_F16,
    "BF16": gguf.LlamaFileType.MOSTLY_BF16,
    "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
}
# targets.toml metadata keys -> general.* writer calls
GENERAL_KEYS = {
    "author": "add_author",
    "version": "add_version",
    "description": "add_description",
    "license": "add_license",
    "url": "add_url",
    "organization": "add_organization",
}


def tensor_type(tensor: PlannedTensor, outtype: str) -> gguf.GGMLQuantizationType:
    """Storage type of one tensor: 1-D tensors stay F32 (tiny, and llama.cpp expects it); Q8_0 needs
    rows that are a multiple of its 32-value block, otherwise F16."""
    if tensor.keep_f32 or len(tensor.shape) == 1:
        return Q.F32
    qtype = DIRECT_TYPES[outtype]
    if qtype == Q.Q8_0 and tensor.shape[-1] % gguf.GGML_QUANT_SIZES[Q.Q8_0][0]:
        return Q.F16
    return qtype


def _declare(writer: gguf.GGUFWriter, tensor: PlannedTensor, qtype) -> None:
    if qtype == Q.F32:
        writer.add_tensor_info(
            tensor.name, tensor.shape, np.dtype(np.float32), 4 * int(np.prod(tensor.shape))
        )
    elif qtype == Q.F16:
        writer.add_tensor_info(
            tensor.name, tensor.shape, np.dtype(np.float16), 2 * int(np.prod(tensor.shape))
        )
    else:
        byte_shape = gguf.quant_shape_to_byte_shape(tensor.shape, qtype)
        writer.add_tensor_info(
            tensor.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)), raw_dtype=qtype
        )


def _encode(data: np.ndarray, qtype) -> np.ndarray:
    if qtype == Q.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == Q.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return gguf.quants.quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def layout_for(folder: ModelFolder):
    family = ARCHITECTURES[folder.config["model_type"]][0]
    return DecoderLayout(folder) if family == "decoder" else EncoderLayout(folder)


def convert_folder(
    source: Path, dest: Path, outtype: str, name: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Convert `source` to the GGUF file `dest`; returns a summary (arch, tensor counts, sizes)."""
    if outtype not in DIRECT_TYPES:
        raise StepFailed(
            f"outtype {outtype!r} cannot be written directly (choose one of {', '.join(DIRECT_TYPES)}; "
            "other types come from gguf.quantize)"
        )
    if not name:
        raise StepFailed(
            "param 'name' is empty: general.name must come from targets.toml, not the folder name"
        )
    problems = check_model_folder(source)
    if problems:
        raise StepFailed("; ".join(f"{p['field']}: {p['problem']}" for p in problems))
    folder = ModelFolder(source)
    layout = layout_for(folder)
    family = ARCHITECTURES[folder.config["model_type"]][0]
    try:
        tokenizer = classify_tokenizer(folder.path, family)
    except Unsupported as exc:  # already reported by check_model_folder; kept for type narrowing
        raise StepFailed(str(exc)) from None

    writer = gguf.GGUFWriter(dest, layout.arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    for key, value in sorted((metadata or {}).items()):
        if key not in GENERAL_KEYS:
            raise StepFailed(f"param metadata.{key}: unknown key (known: {', '.join(sorted(GENERAL_KEYS))})")
        getattr(writer, GENERAL_KEYS[key])(str(value))
    layout.write_hparams(writer)
    writer.add_file_type(FILE_TYPES[outtype])
    n_tokens = write_tokenizer(writer, folder.path, tokenizer, folder.config["vocab_size"])

    plan = layout.tensors()
    embd = next((t for t in plan if t.name == "token_embd.weight"), None)
    if embd is not None and embd.shape[0] != n_tokens:
        raise StepFailed(
            f"tokenizer has {n_tokens} tokens but the embedding has {embd.shape[0]} rows "
            "(config.json:vocab_size and tokenizer.json disagree)"
        )
    types = [tensor_type(t, outtype) for t in plan]
    for tensor, qtype in zip(plan, types):
        _declare(writer, tensor, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor, qtype in zip(plan, types):
        data = tensor.load()
        if tuple(data.shape) != tuple(tensor.shape):
            raise StepFailed(f"tensor {tensor.name}: loaded shape {data.shape} differs from {tensor.shape}")
        writer.write_tensor_data(_encode(data, qtype))
        del data
    writer.close()
    counts: dict[str, int] = {}
    for qtype in types:
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    return {
        "arch": layout.arch,
        "family": family,
        "tokenizer": tokenizer.model,
        "pre_tokenizer": tokenizer.pre,
        "n_tensors": len(plan),
        "tensor_types": counts,
        "n_params": int(sum(np.prod(t.shape) for t in plan)),
        "source_weight_bytes": folder.weights_nbytes(),
    }
