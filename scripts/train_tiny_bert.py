"""Make the demo's tiny BERT sentence encoder (Hugging Face format) for the GGUF embedding target.

A WordPiece tokenizer is trained with `tokenizers` on the same local corpus as the tiny Llama
(models/tiny-llama-corpus.txt), then a 2-layer BERT is trained briefly with masked-language
modelling so its weights are not random noise, and saved with mean pooling (sentence-transformers'
1_Pooling/config.json), as llama.cpp's embedding mode expects. Rerun only to change the demo
(needs torch==2.13.0, transformers, tokenizers):

    python scripts/train_tiny_bert.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "tiny-bert"
CORPUS = ROOT / "models" / "tiny-llama-corpus.txt"
SEED, STEPS, SEQ = 0, 200, 48
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(lines: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=1024, special_tokens=SPECIAL))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=128,
    )


def main() -> None:
    torch.manual_seed(SEED)
    lines = [l.strip() for l in CORPUS.read_text(encoding="utf-8").splitlines() if len(l.strip()) > 20]
    tokenizer = train_tokenizer(lines)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForMaskedLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for step in range(STEPS):
        idx = torch.randint(len(lines), (16,), generator=gen).tolist()
        batch = tokenizer(
            [lines[i] for i in idx],
            padding="max_length",
            truncation=True,
            max_length=SEQ,
            return_tensors="pt",
        )
        labels = batch["input_ids"].clone()
        mask = (torch.rand(labels.shape, generator=gen) < 0.15) & (batch["attention_mask"] == 1)
        labels[~mask] = -100
        batch["input_ids"][mask] = tokenizer.mask_token_id
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"final MLM loss {loss.item():.3f} after {STEPS} steps")
    OUT.mkdir(parents=True, exist_ok=True)
    model.bert.save_pretrained(OUT, safe_serialization=True)  # the encoder alone, as sentence encoders ship
    tokenizer.save_pretrained(OUT)
    (OUT / "1_Pooling").mkdir(exist_ok=True)
    (OUT / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 64,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": True,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
