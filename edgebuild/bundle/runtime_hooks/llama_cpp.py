# ruff: noqa: F821  (reads the loader's RuntimeUnavailable)
# Runtime hooks of GGUF bundles: llama-cpp-python, logits of the last token or an embedding.
#
# Copied verbatim into the loader.py of every llama.cpp bundle (templates/loader_llama_cpp.py.j2 pastes it
# as the runtime hooks of _common.py.j2): runtime_load imports the runtime, never the module
# top, so `verify`, `install` and `rollback` work without it. Python 3.7.
import sys

RUNTIME = "llama.cpp"
RUNTIME_REQUIREMENT = "llama-cpp-python"
RUNTIME_USED = None  # set by runtime_load: the llama-cpp-python version and mode
# Inputs: {"tokens": int32 [n]}. Outputs: decoders {"logits": float32 [vocab]} for the last token;
# encoders (an "embedding" output in the manifest I/O, or the runtime option "embedding": true)
# {"embedding": float32 [dim]}, pooled as the GGUF says
# unless the option "pooling" ("none", "mean", "cls", "last") overrides it.


def runtime_load(folder, manifest, options):
    try:
        import llama_cpp
    except ImportError:
        raise RuntimeUnavailable(
            "llama.cpp bindings are not installed: pip install %s numpy" % RUNTIME_REQUIREMENT
        ) from None
    gguf = [name for name in manifest["artifacts"] if name.endswith(".gguf")] or manifest["artifacts"]
    # Encoders are told apart by their output (an "embedding"), or by the runtime option.
    outputs = [o.get("name") for o in (manifest.get("io") or {}).get("outputs", [])]
    embedding = bool(options.get("embedding", "embedding" in outputs))
    kwargs = dict(
        model_path=str(folder / gguf[0]),
        n_ctx=int(options.get("n_ctx", 512)),
        n_threads=options.get("n_threads"),
        verbose=False,
        embedding=embedding,
        # without logits_all, Llama.eval keeps no scores to read the last token's logits from
        logits_all=not embedding,
        seed=int(options.get("seed", 0)),
    )
    global RUNTIME_USED
    RUNTIME_USED = "llama_cpp %s (%s)" % (
        getattr(llama_cpp, "__version__", "(version unknown)"),
        "embedding" if embedding else "logits",
    )
    if options.get("pooling"):
        kwargs["pooling_type"] = getattr(llama_cpp, "LLAMA_POOLING_TYPE_" + str(options["pooling"]).upper())
    return {"llm": llama_cpp.Llama(**kwargs), "embedding": embedding, "module": llama_cpp}


def runtime_predict(handle, inputs):
    import numpy as np

    if "tokens" not in inputs:
        raise KeyError("llama.cpp bundles take one input, 'tokens' (int32 token ids)")
    tokens = [int(t) for t in np.asarray(inputs["tokens"]).ravel()]
    llm = handle["llm"]
    if handle["embedding"]:
        return {"embedding": _embed_tokens(handle, tokens)}
    llm.reset()
    llm.eval(tokens)
    return {"logits": np.array(llm.scores[len(tokens) - 1], dtype=np.float32)}


def _embed_tokens(handle, tokens):
    """Embed token ids as given. Llama.embed() only takes text, and detokenising then
    re-tokenising need not give the same ids back, so this drives the batch API the way embed()
    does (llama-cpp-python 0.3.x internals)."""
    import numpy as np

    llm, llama_cpp = handle["llm"], handle["module"]
    try:
        llm._batch.reset()
        llm._batch.add_sequence(tokens, 0, True)
        llm._ctx.kv_cache_clear()
        llm._ctx.decode(llm._batch)
        if llm.pooling_type() == llama_cpp.LLAMA_POOLING_TYPE_NONE:
            ptr = llama_cpp.llama_get_embeddings(llm._ctx.ctx)
            n_embd = llm.n_embd()
            vector = np.array(ptr[: n_embd * len(tokens)], dtype=np.float32).reshape(len(tokens), n_embd)
        else:
            vector = np.array(
                llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)[: llm.n_embd()], dtype=np.float32
            )
    except AttributeError:
        sys.stderr.write(
            "warning: this llama-cpp-python has other internals; embedding the detokenised "
            "text, whose tokens may differ from the given ones\n"
        )
        text = llm.detokenize(tokens).decode("utf-8", errors="replace")
        vector = np.array(llm.embed(text), dtype=np.float32)
    finally:
        llm.reset()
    return vector
