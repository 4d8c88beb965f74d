"""Requantize a GGUF file with llama.cpp's own quantizer (through llama-cpp-python)."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgebuild.steps.base import StepFailed

# quantization name -> llama_cpp LLAMA_FTYPE_* constant name, and nominal bits per weight of the
# main type (llama.cpp's figures; mixes like _M spend more on some tensors)
LLAMA_CPP_TYPES: dict[str, tuple[str, float]] = {
    "F32": ("LLAMA_FTYPE_ALL_F32", 32.0),
    "F16": ("LLAMA_FTYPE_MOSTLY_F16", 16.0),
    "BF16": ("LLAMA_FTYPE_MOSTLY_BF16", 16.0),
    "Q8_0": ("LLAMA_FTYPE_MOSTLY_Q8_0", 8.5),
    "Q6_K": ("LLAMA_FTYPE_MOSTLY_Q6_K", 6.5625),
    "Q5_K_M": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", 5.5),
    "Q5_K_S": ("LLAMA_FTYPE_MOSTLY_Q5_K_S", 5.5),
    "Q5_0": ("LLAMA_FTYPE_MOSTLY_Q5_0", 5.5),
    "Q5_1": ("LLAMA_FTYPE_MOSTLY_Q5_1", 6.0),
    "Q4_K_M": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", 4.5),
    "Q4_K_S": ("LLAMA_FTYPE_MOSTLY_Q4_K_S", 4.5),
    "Q4_0": ("LLAMA_FTYPE_MOSTLY_Q4_0", 4.5),
    "Q4_1": ("LLAMA_FTYPE_MOSTLY_Q4_1", 5.0),
    "Q3_K_L": ("LLAMA_FTYPE_MOSTLY_Q3_K_L", 3.4375),
    "Q3_K_M": ("LLAMA_FTYPE_MOSTLY_Q3_K_M", 3.4375),
    "Q3_K_S": ("LLAMA_FTYPE_MOSTLY_Q3_K_S", 3.4375),
    "Q2_K": ("LLAMA_FTYPE_MOSTLY_Q2_K", 2.625),
}


def quantize_file(source: Path, dest: Path, quantization: str, threads: int = 0) -> None:
    """Write `source` (an F16/F32 GGUF) as `quantization` to `dest`. F16 is a plain copy: the
    shared F16 intermediate already is the artifact."""
    if quantization not in LLAMA_CPP_TYPES:
        raise StepFailed(
            f"param quantization: {quantization!r} is not a llama.cpp type "
            f"(choose one of {', '.join(LLAMA_CPP_TYPES)})"
        )
    if quantization == "F16" and _file_type(source) == 1:
        shutil.copyfile(source, dest)
        return
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_CPP_TYPES[quantization][0])
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), llama_cpp.byref(params))
    if rc != 0 or not dest.is_file():
        raise StepFailed(f"llama.cpp could not quantize {source.name} to {quantization} (return code {rc})")


def _file_type(path: Path) -> int | None:
    from gguf import GGUFReader

    field = GGUFReader(path).fields.get("general.file_type")
    return int(field.parts[field.data[0]][0]) if field is not None else None
