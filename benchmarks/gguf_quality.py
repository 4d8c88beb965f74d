"""Agreement of each GGUF quantization with transformers, on the recipe's prompts (the figures the
recipe's thresholds were set from).

    python benchmarks/gguf_quality.py [--model models/tiny-llama] [--levels F32,F16,BF16,Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "tiny-llama")
    parser.add_argument("--levels", default="F32,F16,BF16,Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q3_K_M,Q2_K")
    parser.add_argument("--prompts", type=Path, help="JSON list of prompts (default: the recipe's)")
    args = parser.parse_args()

    from edgebuild.steps.gguf.convert import DIRECT_TYPES, convert_folder
    from edgebuild.steps.gguf.quantize import quantize_file
    from edgebuild.steps.gguf.support import ARCHITECTURES
    from edgebuild.steps.gguf.verify import compare_decoder, compare_encoder

    recipe = tomllib.loads((REPO / "recipes" / "gguf.toml").read_text())
    prompts = json.loads(args.prompts.read_text()) if args.prompts else recipe["parameters"]["prompts"]
    family = ARCHITECTURES[json.loads((args.model / "config.json").read_text())["model_type"]][0]
    compare = compare_encoder if family == "encoder" else compare_decoder
    work = Path(tempfile.mkdtemp(prefix="gguf-quality-"))
    try:
        f16 = work / "F16.gguf"
        convert_folder(args.model, f16, "F16", name="quality")
        print(f"{args.model.name}: {len(prompts)} prompts")
        print(
            f"{'level':<8}{'bytes':>10}{'cosine min':>12}{'argmax agree':>14}{'max |diff|':>12}{'tokens ok':>11}"
            f"{'threshold':>11}{'s':>6}"
        )
        for level in args.levels.split(","):
            path = work / f"{level}.gguf"
            if level in ("F32", "BF16"):
                convert_folder(args.model, path, level, name="quality")
            elif level in DIRECT_TYPES and level == "F16":
                path = f16
            else:
                quantize_file(f16, path, level)
            t = time.perf_counter()
            m = compare(path, args.model, prompts).metrics
            limit = recipe["parameters"]["thresholds"][level]["min_cosine"]
            agree = f"{m['argmax_agreement']:.3f}" if "argmax_agreement" in m else "-"
            diff = f"{m['max_abs_diff']:.4f}" if "max_abs_diff" in m else "-"
            print(
                f"{level:<8}{path.stat().st_size:>10}{m['cosine_min']:>12.6f}{agree:>14}{diff:>12}"
                f"{str(m['tokenizer_match']):>11}{limit:>11}{time.perf_counter() - t:>6.1f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
