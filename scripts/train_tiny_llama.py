"""Train the tiny demo Llama in models/tiny-llama (offline, CPU, about a minute).

Random weights make quantized models look broken (every logit is near every other), so the demo
and the GGUF tests use a model trained briefly on real text: a byte-level BPE tokenizer trained with
`tokenizers`, and a 2-layer Llama (GQA, untied embeddings) trained for a few hundred steps on the
software licenses Debian ships in /usr/share/common-licenses. The corpus used is kept next to the
model (models/tiny-llama-corpus.txt), so a rerun on any machine trains on the same text.

    python scripts/train_tiny_llama.py [--out models/tiny-llama] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "models" / "tiny-llama-corpus.txt"
LICENSES = Path("/usr/share/common-licenses")
LICENSE_FILES = ("Apache-2.0", "BSD", "GPL-2", "GPL-3", "LGPL-2.1", "MPL-2.0")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|endoftext|>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def load_corpus() -> str:
    if CORPUS.is_file():
        return CORPUS.read_text(encoding="utf-8")
    missing = [name for name in LICENSE_FILES if not (LICENSES / name).is_file()]
    if missing:
        raise SystemExit(f"{CORPUS} is missing and {LICENSES} lacks {', '.join(missing)}: no training text")
    text = "\n\n".join((LICENSES / name).read_text(encoding="utf-8") for name in LICENSE_FILES)
    CORPUS.write_text(text, encoding="utf-8")
    return text


def train_tokenizer(text: str, vocab_size: int, out: Path):
    """Byte-level BPE (GPT-2 style, no prefix space), saved as tokenizer.json + tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token=None,
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)
    return fast


def train_model(
    config, ids, steps: int, seq_len: int = 128, batch: int = 16, lr: float = 3e-3, seed: int = 0
):
    """A few hundred AdamW steps of next-token prediction on random windows of `ids`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    data = torch.tensor(ids, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + seq_len] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d} loss {loss.item():.3f}", flush=True)
    model.eval()
    return model, float(loss.item())


def demo_config(vocab_size: int):
    from transformers import LlamaConfig

    # hidden 256 keeps every matrix row a multiple of 256, so K-quants apply to all of them
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "models" / "tiny-llama")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--vocab-size", type=int, default=512)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    start = time.perf_counter()
    text = load_corpus()
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(text, args.vocab_size, args.out)
    ids = tokenizer(text)["input_ids"]
    model, loss = train_model(demo_config(len(tokenizer)), ids, args.steps)
    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    (args.out / "TRAINING.json").write_text(
        json.dumps(
            {
                "script": "scripts/train_tiny_llama.py",
                "steps": args.steps,
                "final_loss": round(loss, 4),
                "corpus": CORPUS.name,
                "corpus_tokens": len(ids),
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {args.out} (final loss {loss:.3f}, {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
