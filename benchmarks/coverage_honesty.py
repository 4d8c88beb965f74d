"""How honest is the coverage checker? Compare its verdict with what really happens.

Runs the checker over the single-operator node tests shipped in the onnx 1.22.0 wheel (1765 small
models with reference inputs and outputs).
- onnxruntime route: each model runs in onnxruntime; it "really works" when it loads, runs and
  every output matches (rtol 1e-3, atol 1e-5; NaN equal).
- TFLite route (--tflite-python, the litert toolchain's interpreter): each model goes through
  edgebuild's own tflite.convert (fp32) and the I/O description the loaders use, then runs in
  LiteRT against the reference. The shipped measured table was derived from these results
  (scripts/derive_tflite_rules.py), so the benchmark also reports 2-fold cross-validation (rules
  from one half judge the other) and whole networks the rules never saw (onnx's light CNNs, as
  shipped and with their weights folded into initializers). The first full run takes about
  40 min on 2 cores; results are cached in --tflite-workdir.

    python benchmarks/coverage_honesty.py [--node-dir DIR] [--limit N] [--json OUT]
        [--tflite-python ~/.cache/edgebuild/toolchains/litert-*/bin/python]

Without --node-dir it fetches the wheel with `pip download --no-deps onnx==1.22.0` into
~/.cache/edgebuild/onnx-node-tests (network needed once). Prints agreement figures and every
disagreement.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ONNX_WHEEL = "onnx==1.22.0"
CACHE = Path(os.environ.get("EDGEBUILD_TEST_CACHE", Path.home() / ".cache" / "edgebuild")) / "onnx-node-tests"
RTOL, ATOL = 1e-3, 1e-5


def test_data_dir(kind: str = "node") -> Path:
    """onnx/backend/test/data/<kind> from the onnx 1.22.0 wheel: "node" (1765 single-op tests) or
    "light" (9 classic CNNs, weights replaced by ConstantOfShape)."""
    target = CACHE / "onnx" / "backend" / "test" / "data" / kind
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    if not list(CACHE.glob("onnx-1.22.0-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), ONNX_WHEEL],
            check=True,
        )
    wheel = next(CACHE.glob("onnx-1.22.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(CACHE, [n for n in zf.namelist() if n.startswith(f"onnx/backend/test/data/{kind}/")])
    return target


def light_model_tests(light_dir: Path, dest: Path) -> list[Path]:
    """The light CNNs laid out like node tests, as shipped (weights computed by ConstantOfShape) and
    with the weights folded into initializers by onnxruntime; a seeded random input and
    onnxruntime's output as the reference (the wheel ships outputs only)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    tests = []
    for source, folded in ((p, f) for p in sorted(light_dir.glob("light_*.onnx")) for f in (False, True)):
        test = dest / f"test_{source.stem}{'_folded' if folded else ''}"
        data = test / "test_data_set_0"
        if not (data / "output_0.pb").exists():
            data.mkdir(parents=True, exist_ok=True)
            model_path = test / "model.onnx"
            if folded:  # weights folded into initializers, as a real export has them
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
                options.optimized_model_filepath = str(model_path)
                ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
                _drop_unused_inputs(model_path)
            else:
                shutil.copyfile(source, model_path)
            session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
            model = onnx.load(str(model_path))
            initializers = {t.name for t in model.graph.initializer}
            names = [vi.name for vi in model.graph.input if vi.name not in initializers]
            shapes = {i.name: i.shape for i in session.get_inputs()}
            rng = np.random.default_rng(0)
            feeds = {name: rng.random(shapes[name], dtype=np.float32) for name in names}
            for k, name in enumerate(names):
                (data / f"input_{k}.pb").write_bytes(
                    numpy_helper.from_array(feeds[name], name).SerializeToString()
                )
            for k, value in enumerate(session.run(None, feeds)):
                (data / f"output_{k}.pb").write_bytes(numpy_helper.from_array(value).SerializeToString())
        tests.append(test)
    return tests


def _read_value(path: str, type_proto):
    """A reference input/output file: TensorProto, SequenceProto or OptionalProto per the model's type."""
    import onnx
    from onnx import numpy_helper

    which = type_proto.WhichOneof("value")
    data = Path(path).read_bytes()
    if which == "sequence_type":
        seq = onnx.SequenceProto()
        seq.ParseFromString(data)
        return numpy_helper.to_list(seq)
    if which == "optional_type":
        opt = onnx.OptionalProto()
        opt.ParseFromString(data)
        return numpy_helper.to_optional(opt)
    if which == "map_type":
        mp = onnx.MapProto()
        mp.ParseFromString(data)
        return numpy_helper.to_dict(mp)
    t = onnx.TensorProto()
    t.ParseFromString(data)
    return numpy_helper.to_array(t)


def _same(actual, expected) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(_same(a, e) for a, e in zip(actual, expected))
        )
    if expected is None:
        return actual is None or (isinstance(actual, list) and not actual)
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if expected.dtype.kind in "fc":
        return bool(
            np.allclose(
                actual.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                rtol=RTOL,
                atol=ATOL,
                equal_nan=True,
            )
        )
    if expected.dtype.kind in "OSU":
        return actual.astype(str).tolist() == expected.astype(str).tolist()
    return bool(np.array_equal(actual, expected))


def _is_exotic(array) -> bool:
    """ml_dtypes arrays (float8, int4, bfloat16...) that onnxruntime's numpy bridge cannot take."""
    return (
        isinstance(array, np.ndarray)
        and array.dtype.kind == "V"
        or (isinstance(array, np.ndarray) and array.dtype.num >= 256)
    )


def _bits(elem_type: int) -> int:
    """Bits per element of packed sub-byte ONNX types (onnxruntime packs them; ml_dtypes does not)."""
    from onnx import TensorProto

    name = TensorProto.DataType.Name(elem_type)
    return 4 if name in ("INT4", "UINT4", "FLOAT4E2M1") else 2 if name in ("INT2", "UINT2") else 8


def _pack(raw: np.ndarray, bits: int) -> np.ndarray:
    flat = raw.reshape(-1).astype(np.uint8) & ((1 << bits) - 1)
    per = 8 // bits
    flat = np.concatenate([flat, np.zeros((-len(flat)) % per, np.uint8)]).reshape(-1, per)
    return sum((flat[:, i] << (i * bits)) for i in range(per)).astype(np.uint8)


def _unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    per = 8 // bits
    parts = [(packed >> (i * bits)) & ((1 << bits) - 1) for i in range(per)]
    return np.stack(parts, axis=1).reshape(-1)[:count].astype(np.uint8)


def _feed(array, vi):
    """Plain numpy arrays go in as they are; exotic element types as raw bytes tagged with the ONNX type."""
    import onnxruntime as ort

    if not _is_exotic(array):
        return array
    elem = vi.type.tensor_type.elem_type
    raw = np.ascontiguousarray(array).view(np.uint8 if array.dtype.itemsize == 1 else np.uint16)
    if _bits(elem) < 8:
        return _packed_value(_pack(raw, _bits(elem)), array.shape, elem)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(raw, elem)


def _packed_value(packed: np.ndarray, shape, elem: int):
    """An OrtValue of a packed sub-byte type: allocate it, then copy the packed bytes in."""
    import ctypes

    import onnxruntime as ort

    value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), elem)
    ctypes.memmove(value.data_ptr(), packed.ctypes.data, min(packed.nbytes, value.tensor_size_in_bytes()))
    return value


def _fetch(value, expected):
    """An output OrtValue as numpy, reading raw bytes for element types numpy cannot name."""
    import ctypes

    if not value.is_tensor() or not _is_exotic(expected):
        return value.numpy()
    nbytes = value.tensor_size_in_bytes()
    data = np.frombuffer(ctypes.string_at(value.data_ptr(), nbytes), dtype=np.uint8).copy()
    if expected.dtype.itemsize * expected.size != nbytes:  # packed sub-byte output
        bits = 4 if nbytes == (expected.size + 1) // 2 else 2
        data = _unpack(data, bits, expected.size)
    return data.view(expected.dtype).reshape(value.shape())


def run_in_onnxruntime(test: Path) -> tuple[bool, str]:
    """(works, why not): loads, runs and matches the reference outputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(test / "model.onnx"))
    data = test / "test_data_set_0"
    initializers = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    feeds = {}
    for i, vi in enumerate(inputs):
        path = data / f"input_{i}.pb"
        if path.exists():
            feeds[vi.name] = _read_value(str(path), vi.type)
    expected = [_read_value(str(data / f"output_{i}.pb"), vi.type) for i, vi in enumerate(model.graph.output)]
    so = ort.SessionOptions()
    so.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(test / "model.onnx"), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        return False, "load: " + str(exc).splitlines()[0][:160]
    exotic = any(_is_exotic(v) for v in list(feeds.values()) + expected)
    try:
        if exotic:
            by_name = {vi.name: vi for vi in inputs}
            ort_feeds = {k: _feed(v, by_name[k]) for k, v in feeds.items()}
            ort_feeds = {
                k: v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
                for k, v in ort_feeds.items()
            }
            values = session.run_with_ort_values(None, ort_feeds)
            actual = [_fetch(v, e) for v, e in zip(values, expected)]
        else:
            actual = session.run(None, feeds)
    except Exception as exc:
        return False, "run: " + str(exc).splitlines()[0][:160]
    for i, (a, e) in enumerate(zip(actual, expected)):
        if _is_exotic(e) and a is not None:
            # compare values as float (NaN equal), the element types numpy cannot name
            a, e = np.asarray(a).astype(np.float32), np.asarray(e).astype(np.float32)
        if not _same(a, e):
            return False, f"output {i} differs from the reference"
    return True, ""


# --- TFLite route: edgebuild's own tflite.convert (fp32) in onnx2tf's venv, run with LiteRT ---------


def tflite_worker(tests_file: Path, results_file: Path, workdir: Path, limit_s: int) -> None:
    """Runs inside the litert toolchain environment: convert each test, run it, append one JSON line per test."""
    import signal

    def alarm(*_):
        raise TimeoutError(f"conversion took more than {limit_s} s")

    signal.signal(signal.SIGALRM, alarm)
    with results_file.open("a") as results:
        for line in tests_file.read_text().split():
            test = Path(line)
            signal.alarm(limit_s)
            try:
                works, why = convert_and_run(test, workdir / test.name)
            except BaseException as exc:  # onnx2tf raises anything, including SystemExit
                works, why = (
                    False,
                    f"{type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}",
                )
            finally:
                signal.alarm(0)
                shutil.rmtree(workdir / test.name, ignore_errors=True)
            results.write(json.dumps({"test": test.name, "works": works, "why": why}) + "\n")
            results.flush()


def convert_and_run(test: Path, scratch: Path) -> tuple[bool, str]:
    """What an edgebuild user gets: the tflite.convert step's conversion (fp32, static shapes) and the
    I/O description the verify step and the loaders use (layout permutations), run with LiteRT."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    from edgebuild.steps.base import StepFailed
    from edgebuild.steps.tflite import convert as step
    from edgebuild.steps.tflite.io_description import IoMismatch, describe_io
    from edgebuild.steps.tflite.verify import _from_artifact, _to_artifact

    model = onnx.load(str(test / "model.onnx"))
    initializers = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    data = test / "test_data_set_0"
    feeds = [_read_value(str(data / f"input_{i}.pb"), vi.type) for i, vi in enumerate(inputs)]
    expected = [_read_value(str(data / f"output_{i}.pb"), vi.type) for i, vi in enumerate(model.graph.output)]
    scratch.mkdir(parents=True, exist_ok=True)
    from edgebuild.steps.tflite import prepare

    try:
        step._check_domains(model)
        shapes = prepare.static_input_shapes(model, {})
        produced, _route, _failed, _notes = step.convert_float_file(test / "model.onnx", shapes, scratch)
        io_desc = describe_io(
            produced, list(shapes.items()), [(vi.name, prepare.dims(vi)) for vi in model.graph.output]
        )
    except prepare.PrepareError as exc:
        return False, "convert: " + str(exc)[:150]
    except (StepFailed, IoMismatch) as exc:
        return False, "convert: " + str(exc)[:150]
    interp = Interpreter(model_path=str(produced))
    interp.allocate_tensors()
    for entry, value in zip(io_desc["inputs"], feeds):
        interp.set_tensor(entry["tensor_index"], _to_artifact(np, np.asarray(value), entry))
    interp.invoke()
    for i, (entry, e) in enumerate(zip(io_desc["outputs"], expected)):
        e = np.asarray(e)
        got = _from_artifact(np, interp.get_tensor(entry["tensor_index"]), entry)
        if e.dtype.kind in "OSUV" or not _same(got.astype(e.dtype), e):
            return False, f"output {i} differs from the reference"
    return True, ""


def run_tflite(
    tests: list[Path], python: str, workdir: Path, limit_s: int = 90
) -> dict[str, tuple[bool, str]]:
    """Drive tflite_worker in `python` (onnx2tf's venv), restarting it after a crash."""
    from edgebuild.toolchain import worker_pythonpath

    workdir.mkdir(parents=True, exist_ok=True)
    results_file = workdir / "results.jsonl"
    done: dict[str, tuple[bool, str]] = {}
    if results_file.exists():
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[r["test"]] = (r["works"], r["why"])
    while True:
        todo = [t for t in tests if t.name not in done]
        if not todo:
            return done
        tests_file = workdir / "todo.txt"
        tests_file.write_text("\n".join(str(t) for t in todo))
        env = dict(os.environ, PYTHONPATH=worker_pythonpath())  # edgebuild's step code, nothing else
        proc = subprocess.Popen(
            [
                python,
                str(Path(__file__).resolve()),
                "--tflite-worker",
                str(tests_file),
                str(results_file),
                str(workdir),
                str(limit_s),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
        )
        _watch(proc, results_file, 2 * limit_s)
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[r["test"]] = (r["works"], r["why"])
        nxt = [t for t in tests if t.name not in done]
        if nxt and proc.returncode != 0:  # the worker died on nxt[0]: count it as failed, go on
            crashed = nxt[0].name
            why = (
                f"no result in {2 * limit_s} s (killed)"
                if proc.returncode == -9
                else f"crashed (rc {proc.returncode})"
            )
            with results_file.open("a") as f:
                f.write(json.dumps({"test": crashed, "works": False, "why": why}) + "\n")


def _watch(proc, results_file: Path, quiet_s: float) -> None:
    """Wait for the worker; kill it when no result has arrived for quiet_s (TensorFlow can hang in
    C++ code, where the worker's own alarm never fires)."""
    last = time.monotonic()
    size = results_file.stat().st_size if results_file.exists() else 0
    while proc.poll() is None:
        time.sleep(2)
        now_size = results_file.stat().st_size if results_file.exists() else 0
        if now_size != size:
            size, last = now_size, time.monotonic()
        elif time.monotonic() - last > quiet_s:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-dir", type=Path, help="onnx/backend/test/data/node folder")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--filter", default="", help="only tests whose name contains this")
    parser.add_argument("--json", type=Path, help="write per-test results here")
    parser.add_argument(
        "--tflite-python", help="python of a venv with onnx2tf 1.29.24: also measure the tflite route"
    )
    parser.add_argument(
        "--tflite-every",
        type=int,
        default=1,
        help="tflite route: every Nth node test (all: about 40 min on 2 cores, then cached)",
    )
    parser.add_argument(
        "--tflite-offset", type=int, default=0, help="tflite route: start at this test (another sample)"
    )
    parser.add_argument("--tflite-workdir", type=Path, default=Path("/tmp/edgebuild-tflite-honesty"))
    parser.add_argument("--tflite-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tflite_worker:
        tflite_worker(*(Path(p) for p in args.tflite_worker[:3]), int(args.tflite_worker[3]))
        return 0

    from edgebuild.coverage import check_model

    node_dir = args.node_dir or test_data_dir("node")
    tests = sorted(Path(p).parent for p in glob.glob(str(node_dir / "*" / "model.onnx")))
    tests = [t for t in tests if args.filter in t.name]
    if args.limit:
        tests = tests[: args.limit]
    import onnxruntime

    results = []
    crashed = 0
    t_check = 0.0
    for test in tests:
        t0 = time.perf_counter()
        try:
            report = check_model(test / "model.onnx", "onnxruntime", {})
            predicted, why_predicted = report.ok, report.summary_line()
        except Exception as exc:  # the checker must never crash on a valid model: count it
            crashed += 1
            predicted, why_predicted = False, f"CHECKER CRASHED: {type(exc).__name__}: {exc}"
        t_check += time.perf_counter() - t0
        works, why = run_in_onnxruntime(test)
        results.append(
            {
                "test": test.name,
                "predicted": predicted,
                "actual": works,
                "checker": why_predicted,
                "onnxruntime": why,
            }
        )

    n = len(results)
    agree = sum(r["predicted"] == r["actual"] for r in results)
    tp = sum(r["predicted"] and r["actual"] for r in results)
    tn = sum(not r["predicted"] and not r["actual"] for r in results)
    fp = [r for r in results if r["predicted"] and not r["actual"]]
    fn = [r for r in results if not r["predicted"] and r["actual"]]
    print(f"onnx node tests: {n} (onnx 1.22.0 wheel); onnxruntime {onnxruntime.__version__} CPU")
    print(f"agreement: {agree}/{n} = {agree / n:.2%}")
    print(f"  predicted supported and works: {tp}; predicted unsupported and fails: {tn}")
    print(
        f"  predicted supported but fails or mismatches: {len(fp)}; predicted unsupported but works: {len(fn)}"
    )
    print(
        f"  checker crashes: {crashed}; checker time {t_check:.1f} s total, {1000 * t_check / max(n, 1):.1f} ms/model"
    )
    print("\ndisagreements (checker said supported, onnxruntime failed):")
    for r in fp:
        print(f"  {r['test']}: {r['onnxruntime']}")
    print("\ndisagreements (checker said unsupported, onnxruntime worked):")
    for r in fn:
        print(f"  {r['test']}: {r['checker']}")
    if args.tflite_python:
        report_tflite(tests[args.tflite_offset :: args.tflite_every], args)
    else:
        print("\ntflite route: not measured (pass --tflite-python, a venv with onnx2tf 1.29.24)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def report_tflite(tests: list[Path], args) -> None:
    """Agreement of the TFLite route with edgebuild's real conversion. The measured rule table is
    derived from these same tests, so the honest figure is the cross-validated one: rules derived
    from one half of the tests (scripts/derive_tflite_rules.py) judge the other half."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import derive_tflite_rules as derivation

    from edgebuild.coverage import check_model

    t0 = time.perf_counter()
    actual = run_tflite(tests, args.tflite_python, args.tflite_workdir)
    seconds = time.perf_counter() - t0
    shipped = {t.name: check_model(t / "model.onnx", "tflite", {}) for t in tests}
    folds = [[t for t in tests if _fold(t.name) == k] for k in (0, 1)]
    held_out: dict[str, tuple[bool, str]] = {}
    for k in (0, 1):
        learn = {t.name: actual[t.name] for t in folds[1 - k]}
        rules = derivation.rules_for(
            derivation.derive(derivation.examples_from_results(learn, tests[0].parent))
        )
        held_out.update({t.name: _verdict_with(t, rules) for t in folds[k]})
    n = len(tests)
    print(
        f"\ntflite route: edgebuild's tflite.convert (onnx2tf, fp32) + LiteRT against the reference outputs, "
        f"{n} node tests ({seconds:.0f} s; cached results reused from {args.tflite_workdir})"
    )
    works = sum(actual[t.name][0] for t in tests)
    print(f"  really works: {works}/{n}")
    for label, verdicts in (
        ("held-out (2-fold cross-validation)", {k: v[0] for k, v in held_out.items()}),
        ("shipped table (derived from all these tests: in-sample)", {k: r.ok for k, r in shipped.items()}),
    ):
        agree = sum(verdicts[t.name] == actual[t.name][0] for t in tests)
        fp = sum(verdicts[t.name] and not actual[t.name][0] for t in tests)
        fn = sum(not verdicts[t.name] and actual[t.name][0] for t in tests)
        print(
            f"  agreement, {label}: {agree}/{n} = {agree / max(n, 1):.2%} "
            f"(said supported but fails: {fp}; said unsupported but works: {fn})"
        )
    report_light(args)
    print("\ndisagreements, held-out verdicts:")
    for t in tests:
        said, why_said = held_out[t.name]
        works, why = actual[t.name]
        if said != works:
            print(
                f"  {t.name}: checker {'supported' if said else 'unsupported'}, edgebuild's conversion "
                f"{'works' if works else 'fails: ' + why}" + ("" if said else f" [{why_said[:120]}]")
            )


def _drop_unused_inputs(path: Path) -> None:
    """onnxruntime keeps the folded-away shape inputs as graph inputs nothing reads: drop them."""
    import onnx

    model = onnx.load(str(path))
    used = {name for node in model.graph.node for name in node.input}
    keep = [vi for vi in model.graph.input if vi.name in used]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    onnx.save(model, str(path))


def report_light(args) -> None:
    """Whole networks the rules never saw: the wheel's light CNNs, judged by the shipped table."""
    from edgebuild.coverage import check_model

    tests = light_model_tests(test_data_dir("light"), args.tflite_workdir / "light-tests")
    actual = run_tflite(tests, args.tflite_python, args.tflite_workdir / "light", limit_s=900)
    agree = counted = 0
    print(
        f"\nwhole networks (onnx's light CNNs as shipped and with folded weights; not used to derive "
        f"the rules): {len(tests)}"
    )
    for t in tests:
        report = check_model(t / "model.onnx", "tflite", {})
        works, why = actual[t.name]
        said = "supported" if report.ok else "unsupported"
        name = t.name[len("test_light_") :]
        if why.startswith(("no result in", "TimeoutError")):  # too slow here to know: not counted
            print(f"  {name}: checker {said}; the conversion did not finish within the limit (not counted)")
            continue
        counted += 1
        agree += report.ok == works
        print(
            f"  {name}: checker {said}, conversion {'works' if works else 'fails: ' + why[:100]}"
            + ("" if report.ok else f" [{report.summary_line()[:100]}]")
        )
    print(f"  agreement: {agree}/{counted}")


def _fold(name: str) -> int:
    """A stable split of the tests into halves (not Python's salted hash)."""
    import hashlib

    return hashlib.sha256(name.encode()).digest()[0] % 2


def _verdict_with(test: Path, rules: dict) -> tuple[bool, str]:
    from edgebuild.coverage import tflite
    from edgebuild.coverage.checker import assemble_report
    from edgebuild.coverage.graph_walk import walk_model
    from edgebuild.coverage.partition import SUPPORTED

    try:
        graph = walk_model(test / "model.onnx")
    except Exception as exc:  # counted as "unsupported", as check_model's caller would see an error
        return False, str(exc)
    report = assemble_report(graph, "tflite", tflite.check(graph, {}, rules), {})
    bad = [i.message for i in report.errors] + [
        f"{n.op}: {n.reason}" for n in report.nodes if n.status != SUPPORTED
    ]
    return report.ok, "; ".join(bad[:2])


if __name__ == "__main__":
    sys.exit(main())
