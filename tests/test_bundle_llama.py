"""The llama.cpp loader with the real llama-cpp-python on a tiny random-weight Llama GGUF written
with the `gguf` package: the loader's last-token logits must match a direct llama.cpp evaluation
(cosine and tolerance), and a wrong expectation must fail."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from edgebuild.bundle import write_bundle
from bundle_helpers import make_spec, run_loader

llama_cpp = pytest.importorskip("llama_cpp", reason="the gguf extra (llama-cpp-python) is not installed")
gguf = pytest.importorskip("gguf", reason="the gguf extra (gguf) is not installed")

DIM, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128


def make_tiny_llama(path: Path) -> int:
    """A 2-layer Llama with a SentencePiece-style vocabulary (specials + 256 byte tokens + a few
    words); returns the vocabulary size."""
    rng = np.random.default_rng(0)
    tokens = (
        ["<unk>", "<s>", "</s>"]
        + [f"<0x{b:02X}>" for b in range(256)]
        + ["\u2581hello", "\u2581world", "\u2581edge"]
    )
    types = [2, 3, 3] + [6] * 256 + [1, 1, 1]  # unknown, control, byte, normal
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-test")
    writer.add_context_length(128)
    writer.add_embedding_length(DIM)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(DIM // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 3 + [-1000.0] * 256 + [-1.0, -2.0, -3.0])
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)

    def tensor(name, *shape):
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    vocab, kv_dim = len(tokens), DIM // HEADS * KV_HEADS
    tensor("token_embd.weight", vocab, DIM)
    writer.add_tensor("output_norm.weight", np.ones(DIM, np.float32))
    tensor("output.weight", vocab, DIM)
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(DIM, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(DIM, np.float32))
        tensor(f"blk.{i}.attn_q.weight", DIM, DIM)
        tensor(f"blk.{i}.attn_k.weight", kv_dim, DIM)
        tensor(f"blk.{i}.attn_v.weight", kv_dim, DIM)
        tensor(f"blk.{i}.attn_output.weight", DIM, DIM)
        tensor(f"blk.{i}.ffn_gate.weight", FFN, DIM)
        tensor(f"blk.{i}.ffn_up.weight", FFN, DIM)
        tensor(f"blk.{i}.ffn_down.weight", DIM, FFN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return vocab


@pytest.fixture(scope="module")
def llama_bundles(work, keypair, tmp_path_factory):
    out = tmp_path_factory.mktemp("llama")
    model = out / "tiny-f32.gguf"
    vocab = make_tiny_llama(model)
    tokens = np.array([1, 259, 260, 261, 72, 105], np.int32)
    # reference: llama.cpp driven directly, logits of every position; the loader must report the last
    llm = llama_cpp.Llama(str(model), n_ctx=64, logits_all=True, verbose=False, seed=0)
    llm.eval(tokens.tolist())
    scores = np.array(llm.scores[: len(tokens)], np.float32)
    llm.close()
    assert scores.shape == (len(tokens), vocab)
    assert np.linalg.norm(scores[-1] - scores[-2]) > 1e-3, (
        "positions must differ for the test to mean anything"
    )
    bundles = {}
    for name, expected in (("right", scores[-1]), ("wrong-position", scores[-2])):
        np.savez(
            out / f"{name}.npz",
            **{
                "input.tokens": tokens,
                "expected.logits": expected,
                "atol": np.array(1e-3),
                "rtol": np.array(1e-3),
                "min_cosine": np.array(0.9999),
            },
        )
        spec = make_spec(
            work,
            target=f"laptop-{name}",
            recipe="gguf",
            runtime="llama.cpp",
            artifacts={"model.gguf": model},
            selftest=out / f"{name}.npz",
            io={
                "inputs": [{"name": "tokens", "shape": [-1], "dtype": "int32"}],
                "outputs": [{"name": "logits", "shape": [-1, vocab], "dtype": "float32"}],
            },
            runtime_options={},
        )
        archive = write_bundle(spec, out / "bundles", keypair[0])
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        bundles[name] = out / archive.name[: -len(".tar.gz")]
    return bundles


def test_llama_selftest_compares_last_token_logits(llama_bundles, keypair):
    passed = run_loader(llama_bundles["right"] / "loader.py", "selftest", "--key", str(keypair[1]))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "ok   logits:" in passed.stdout and "cosine" in passed.stdout
    failed = run_loader(llama_bundles["wrong-position"] / "loader.py", "selftest", "--key", str(keypair[1]))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "FAIL logits:" in failed.stdout


def make_tiny_bert(path: Path) -> None:
    """A 1-layer BERT encoder with a WordPiece vocabulary, mean pooling."""
    rng = np.random.default_rng(1)
    dim, ffn, ctx = 32, 64, 64
    tokens = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "\u2581hello",
        "\u2581world",
        "\u2581edge",
        "\u2581build",
    ]
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_name("tiny-bert")
    writer.add_context_length(ctx)
    writer.add_embedding_length(dim)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(4)
    writer.add_layer_norm_eps(1e-12)
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_token_type_count(2)
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 2, 3, 3, 3, 1, 1, 1, 1])
    writer.add_bos_token_id(2)
    writer.add_sep_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_unk_token_id(1)
    writer.add_mask_token_id(4)

    def tensor(name, *shape):
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    tensor("token_embd.weight", len(tokens), dim)
    tensor("token_types.weight", 2, dim)
    tensor("position_embd.weight", ctx, dim)
    for norm in ("token_embd_norm", "blk.0.attn_output_norm", "blk.0.layer_output_norm"):
        writer.add_tensor(f"{norm}.weight", np.ones(dim, np.float32))
        writer.add_tensor(f"{norm}.bias", np.zeros(dim, np.float32))
    for name, rows, cols in (
        ("attn_q", dim, dim),
        ("attn_k", dim, dim),
        ("attn_v", dim, dim),
        ("attn_output", dim, dim),
        ("ffn_up", ffn, dim),
        ("ffn_down", dim, ffn),
    ):
        tensor(f"blk.0.{name}.weight", rows, cols)
        tensor(f"blk.0.{name}.bias", rows)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_encoder_bundle_embeds_the_given_tokens(work, keypair, tmp_path):
    model = tmp_path / "tiny-bert.gguf"
    make_tiny_bert(model)
    llm = llama_cpp.Llama(str(model), embedding=True, n_ctx=64, verbose=False)
    tokens = np.array(llm.tokenize(b"hello edge world"), np.int32)
    expected = np.array(llm.embed("hello edge world"), np.float32)  # llama.cpp's own text path
    llm.close()
    assert tokens.tolist()[0] == 2 and tokens.tolist()[-1] == 3  # [CLS] ... [SEP]
    np.savez(
        tmp_path / "selftest.npz",
        **{
            "input.tokens": tokens,
            "input.text": np.asarray("hello edge world"),
            "expected.embedding": expected,
            "atol": np.array(1e-4),
            "rtol": np.array(1e-4),
            "min_cosine": np.array(0.9999),
        },
    )
    spec = make_spec(
        work,
        target="encoder",
        recipe="gguf",
        runtime="llama.cpp",
        runtime_options={},
        artifacts={"encoder.gguf": model},
        selftest=tmp_path / "selftest.npz",
        io={
            "inputs": [{"name": "tokens", "shape": [-1], "dtype": "int32"}],
            "outputs": [{"name": "embedding", "shape": [32], "dtype": "float32"}],
        },
    )
    archive = write_bundle(spec, tmp_path / "bundles", keypair[0])
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    result = run_loader(
        tmp_path / archive.name[: -len(".tar.gz")] / "loader.py", "selftest", "--key", str(keypair[1])
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   embedding:" in result.stdout
    assert "other internals" not in result.stderr, "the token path must be used, not the text fallback"
