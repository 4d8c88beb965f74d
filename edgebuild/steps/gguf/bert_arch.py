"""BERT-style sentence encoders as llama.cpp's `bert` graph (run with embedding=True)."""

from __future__ import annotations

import json

import gguf
import numpy as np

from edgebuild.steps.base import StepFailed
from edgebuild.steps.gguf.hf_folder import ModelFolder
from edgebuild.steps.gguf.layout import PlannedTensor

# HF tensors the encoder graph does not use (position ids buffer, the classification pooler)
_IGNORED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


class EncoderLayout:
    arch = "bert"

    def __init__(self, folder: ModelFolder):
        self.folder = folder
        self.config = folder.config
        self.n_layer = self.config["num_hidden_layers"]

    def pooling(self) -> gguf.PoolingType:
        """sentence-transformers keeps its pooling choice in 1_Pooling/config.json; mean otherwise."""
        pooling_config = self.folder.path / "1_Pooling" / "config.json"
        if pooling_config.is_file():
            pooling = json.loads(pooling_config.read_text(encoding="utf-8"))
            if pooling.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            if not pooling.get("pooling_mode_mean_tokens", True):
                raise StepFailed(f"{pooling_config}: only mean or CLS pooling is supported by llama.cpp")
        return gguf.PoolingType.MEAN

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        cfg = self.config
        w.add_context_length(cfg.get("max_position_embeddings", 512))
        w.add_embedding_length(cfg["hidden_size"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_block_count(self.n_layer)
        w.add_head_count(cfg["num_attention_heads"])
        w.add_layer_norm_eps(cfg.get("layer_norm_eps", 1e-12))
        w.add_causal_attention(False)
        w.add_pooling_type(self.pooling())
        w.add_token_type_count(cfg.get("type_vocab_size", 2))
        w.add_vocab_size(cfg["vocab_size"])

    def tensors(self) -> list[PlannedTensor]:
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, self.n_layer)
        plan = []
        for hf_name, entry in self.folder.iter_tensors():
            bare = hf_name.removeprefix("bert.")
            if bare in _IGNORED or hf_name.startswith("cls."):
                continue
            gguf_name = names.get_name(bare, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise StepFailed(f"{entry.file.name}: tensor {hf_name!r} has no llama.cpp bert equivalent")
            # llama.cpp adds the token-type row to F32 activations directly: it must be stored F32
            keep_f32 = len(entry.shape) == 1 or gguf_name.startswith("token_types.")
            plan.append(PlannedTensor(gguf_name, entry.shape, self._loader(hf_name), keep_f32=keep_f32))
        return plan

    def _loader(self, hf_name: str):
        return lambda: self.folder.load(hf_name).astype(np.float32, copy=False)
