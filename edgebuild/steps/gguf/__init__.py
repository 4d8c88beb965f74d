"""GGUF for llama.cpp: a converter written on the public `gguf` API, llama.cpp's quantizer, and a
verification against transformers. Modules: support (what converts; the check), hf_folder (config and
streamed safetensors), llama_arch / bert_arch (tensor layout and keys per architecture),
tokenizer_meta (vocabulary keys), convert (the writer), quantize, verify, steps (the step kinds)."""

from edgebuild.steps.gguf.steps import GgufCheckStep, GgufConvertStep, GgufQuantizeStep, GgufVerifyStep

STEPS = {step.name: step for step in (GgufCheckStep, GgufConvertStep, GgufQuantizeStep, GgufVerifyStep)}
