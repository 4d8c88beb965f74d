"""Tokenizer metadata for GGUF: token list, types, scores/merges, special ids and the chat template,
in the form llama.cpp's tokenizers (gpt2 BPE, llama SentencePiece, bert WordPiece) read."""

from __future__ import annotations

import json
from pathlib import Path

import gguf

from edgebuild.steps.base import StepFailed
from edgebuild.steps.gguf.support import TokenizerChoice

# special ids GGUF has keys for (a BERT [CLS] is its bos)
_SPECIAL = ("bos", "eos", "unk", "sep", "pad", "mask")


def write_tokenizer(writer: gguf.GGUFWriter, folder: Path, choice: TokenizerChoice, n_vocab: int) -> int:
    """Add the tokenizer keys; returns the number of tokens written (= the model's vocab rows)."""
    if choice.model == "gpt2":
        tokens, types = _json_vocab(folder, n_vocab)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(choice.pre)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(
            folder, load_merges=True, n_vocab=len(tokens), special_token_types=_SPECIAL
        )
    elif choice.model == "llama":
        tokens, scores, types = _sentencepiece_vocab(folder, n_vocab)
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre(choice.pre)
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        special = gguf.SpecialVocab(
            folder, load_merges=False, n_vocab=len(tokens), special_token_types=_SPECIAL
        )
    elif choice.model == "bert":
        tokens, types = _json_vocab(folder, n_vocab)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre(choice.pre)
        writer.add_token_list([_phantom_space(t) for t in tokens])
        writer.add_token_types(types)
        special = gguf.SpecialVocab(
            folder, load_merges=False, n_vocab=len(tokens), special_token_types=_SPECIAL
        )
    else:  # support.classify_tokenizer only returns the three above
        raise StepFailed(f"tokenizer model {choice.model!r} is not supported")
    # HF adds BOS/EOS only where its post-processor or config says so; state it explicitly so
    # llama.cpp's per-vocab defaults cannot differ from transformers
    if choice.model == "gpt2":
        special.add_special_token.setdefault("bos", False)
        special.add_special_token.setdefault("eos", False)
    special.add_to_gguf(writer, quiet=True)
    return len(tokens)


def _json_vocab(folder: Path, n_vocab: int) -> tuple[list[str], list[int]]:
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    by_id = {idx: text for text, idx in tok["model"]["vocab"].items()}
    added = {t["id"]: t for t in tok.get("added_tokens", [])}
    size = max(n_vocab, max(by_id, default=-1) + 1, max(added, default=-1) + 1)
    tokens, types = [], []
    for idx in range(size):
        if idx in added:
            tokens.append(added[idx]["content"])
            types.append(gguf.TokenType.CONTROL if added[idx].get("special") else gguf.TokenType.USER_DEFINED)
        elif idx in by_id:
            tokens.append(by_id[idx])
            types.append(gguf.TokenType.NORMAL)
        else:  # the embedding matrix has more rows than the tokenizer has tokens
            tokens.append(f"[PAD{idx}]")
            types.append(gguf.TokenType.UNUSED)
    return tokens, [int(t) for t in types]


def _sentencepiece_vocab(folder: Path, n_vocab: int) -> tuple[list[bytes], list[float], list[int]]:
    vocab = gguf.SentencePieceVocab(folder)
    tokens, scores, types = [], [], []
    for text, score, kind in vocab.all_tokens():
        tokens.append(text)
        scores.append(float(score))
        types.append(int(kind))
    for idx in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{idx}]".encode())
        scores.append(-1000.0)
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, scores, types


def _phantom_space(token: str) -> str:
    """llama.cpp's WordPiece marks word starts with U+2581 instead of marking continuations with ##."""
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token
