"""GGUF conversion cost against model size, and quantized sizes against llama.cpp's bits per weight.

For the demo model and synthetic Llama folders of growing size (random bf16 weights, sharded like
real checkpoints), each conversion runs in its own process so its peak RSS is its own; the figures
show whether memory stays bounded by the largest tensor rather than the model. Then the demo's F16
file is quantized to each level and its size compared with the nominal bits per weight.

    python benchmarks/gguf_convert.py [--sizes 256,512,1024] [--levels Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_synthetic_llama(out: Path, hidden: int) -> Path:
    """A random Llama whose matrices scale with `hidden` (4 layers, GQA, vocab 4096), saved in bf16
    shards of ~64 MB with the demo tokenizer, vocab padded like a real checkpoint's."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=4096,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=4,
        num_attention_heads=max(hidden // 64, 1),
        num_key_value_heads=max(hidden // 128, 1),
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="64MB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / "models" / "tiny-llama" / name, out / name)
    return out


def convert_in_child(source: Path, dest: Path, outtype: str) -> dict:
    code = (
        PEAK_RSS_SRC + "import json, sys, time; from pathlib import Path; "
        "from edgebuild.steps.gguf.convert import convert_folder; t = time.perf_counter(); "
        "s = convert_folder(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], name='bench'); "
        "print(json.dumps({'seconds': time.perf_counter() - t, 'n_params': s['n_params'], "
        "'peak_rss_mb': peak_rss_mb()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(source), str(dest), outtype],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak
PEAK_RSS_SRC = (
    "def peak_rss_mb():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1]) / 1024\n"
)


def baseline_rss_mb() -> float:
    code = PEAK_RSS_SRC + "import gguf, numpy; from edgebuild.steps.gguf import convert; print(peak_rss_mb())"
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512,1024", help="hidden sizes of the synthetic models")
    parser.add_argument("--levels", default="Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K")
    args = parser.parse_args()

    from edgebuild.steps.gguf.hf_folder import ModelFolder
    from edgebuild.steps.gguf.quantize import LLAMA_CPP_TYPES, quantize_file

    work = Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    try:
        print(f"import baseline (python + numpy + gguf): {baseline_rss_mb():.0f} MB RSS")
        print(
            f"{'model':<18}{'params':>10}{'weights MB':>12}{'largest MB':>12}{'to':>6}{'seconds':>9}"
            f"{'peak RSS MB':>13}"
        )
        sources = [("tiny-llama (demo)", REPO / "models" / "tiny-llama")]
        for hidden in (int(h) for h in args.sizes.split(",")):
            sources.append((f"synthetic h{hidden}", make_synthetic_llama(work / f"h{hidden}", hidden)))
        for label, source in sources:
            folder = ModelFolder(source)
            largest = max(e.end - e.start for e in folder.tensors.values()) / 1e6
            for outtype in ("F16", "Q8_0"):
                r = convert_in_child(source, work / f"{source.name}-{outtype}.gguf", outtype)
                print(
                    f"{label:<18}{r['n_params'] / 1e6:>9.1f}M{folder.weights_nbytes() / 1e6:>12.1f}"
                    f"{largest:>12.1f}{outtype:>6}{r['seconds']:>9.2f}{r['peak_rss_mb']:>13.0f}"
                )

        demo_f16 = work / "tiny-llama-F16.gguf"
        n_params = convert_in_child(REPO / "models" / "tiny-llama", demo_f16, "F16")["n_params"]
        print(
            f"\nquantized sizes of the demo ({n_params / 1e6:.2f}M params; small models keep 1-D tensors "
            "and fallbacks, so real bpw sits above nominal)"
        )
        print(f"{'level':<8}{'bytes':>10}{'bits/weight':>13}{'nominal':>9}{'seconds':>9}")
        print(
            f"{'F16':<8}{demo_f16.stat().st_size:>10}{8 * demo_f16.stat().st_size / n_params:>13.2f}{16.0:>9.2f}"
        )
        for level in args.levels.split(","):
            dest = work / f"demo-{level}.gguf"
            t = time.perf_counter()
            quantize_file(demo_f16, dest, level)
            seconds = time.perf_counter() - t
            size = dest.stat().st_size
            print(
                f"{level:<8}{size:>10}{8 * size / n_params:>13.2f}{LLAMA_CPP_TYPES[level][1]:>9.2f}{seconds:>9.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
