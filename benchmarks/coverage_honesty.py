"""How honest is the coverage checker? Compare its verdict with what really happens.

Runs the checker over the single-operator node tests shipped in the onnx 1.22.0 wheel (1765 small
models with reference inputs and outputs) and, for the onnxruntime route, runs each model in
onnxruntime and compares with the reference outputs. A test "really works" when onnxruntime loads
and runs it and every output matches (rtol 1e-3, atol 1e-5; NaN equal). Prints agreement figures
and every disagreement.

    python benchmarks/coverage_honesty.py [--node-dir DIR] [--limit N] [--json OUT]

Without --node-dir it fetches the wheel with `pip download --no-deps onnx==1.22.0` into
~/.cache/edgebuild/onnx-node-tests (network needed once).
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


def node_test_dir() -> Path:
    target = CACHE / "onnx" / "backend" / "test" / "data" / "node"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), ONNX_WHEEL],
                   check=True)
    wheel = next(CACHE.glob("onnx-1.22.0-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(CACHE, [n for n in zf.namelist() if n.startswith("onnx/backend/test/data/node/")])
    return target


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
        return isinstance(actual, list) and len(actual) == len(expected) and all(
            _same(a, e) for a, e in zip(actual, expected))
    if expected is None:
        return actual is None or (isinstance(actual, list) and not actual)
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    if expected.dtype.kind in "fc":
        return bool(np.allclose(actual.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                                expected.astype(np.complex128 if expected.dtype.kind == "c" else np.float64),
                                rtol=RTOL, atol=ATOL, equal_nan=True))
    if expected.dtype.kind in "OSU":
        return actual.astype(str).tolist() == expected.astype(str).tolist()
    return bool(np.array_equal(actual, expected))


def _is_exotic(array) -> bool:
    """ml_dtypes arrays (float8, int4, bfloat16...) that onnxruntime's numpy bridge cannot take."""
    return isinstance(array, np.ndarray) and array.dtype.kind == "V" or (
        isinstance(array, np.ndarray) and array.dtype.num >= 256)


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
    if expected.dtype.itemsize * expected.size != nbytes:          # packed sub-byte output
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
            ort_feeds = {k: v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
                         for k, v in ort_feeds.items()}
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


# --- TFLite route: onnx2tf conversion, run with the LiteRT interpreter (in onnx2tf's own venv) -------

def _nhwc_variants(array: np.ndarray):
    yield array
    if 3 <= array.ndim <= 5:
        yield np.moveaxis(array, 1, -1)


def tflite_worker(tests_file: Path, results_file: Path, workdir: Path) -> None:
    """Runs inside the onnx2tf environment: convert each test, run it, append one JSON line per test."""
    import signal

    import onnx
    import onnx2tf
    from ai_edge_litert.interpreter import Interpreter

    def alarm(*_):
        raise TimeoutError("conversion took more than 90 s")

    signal.signal(signal.SIGALRM, alarm)
    with results_file.open("a") as results:
        for line in tests_file.read_text().split():
            test = Path(line)
            out = workdir / test.name
            signal.alarm(90)
            try:
                works, why = _convert_and_run(test, out, onnx, onnx2tf, Interpreter)
            except BaseException as exc:  # onnx2tf raises anything, including SystemExit
                works, why = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}"
            finally:
                signal.alarm(0)
            results.write(json.dumps({"test": test.name, "works": works, "why": why}) + "\n")
            results.flush()


def _convert_and_run(test: Path, out: Path, onnx, onnx2tf, Interpreter) -> tuple[bool, str]:
    model = onnx.load(str(test / "model.onnx"))
    initializers = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in initializers]
    data = test / "test_data_set_0"
    feeds = [_read_value(str(data / f"input_{i}.pb"), vi.type) for i, vi in enumerate(inputs)]
    expected = [_read_value(str(data / f"output_{i}.pb"), vi.type) for i, vi in enumerate(model.graph.output)]
    # onnx2tf rewrites its input file in place (simplified): give it a copy
    out.mkdir(parents=True, exist_ok=True)
    source = out / "model.onnx"
    shutil.copyfile(test / "model.onnx", source)
    try:
        onnx2tf.convert(input_onnx_file_path=str(source), output_folder_path=str(out), non_verbose=True)
    except BaseException as exc:
        return False, "convert: " + (str(exc).splitlines()[0][:150] if str(exc) else type(exc).__name__)
    files = sorted(out.glob("*_float32.tflite"))
    if not files:
        return False, "convert: no float32 .tflite written"
    interp = Interpreter(model_path=str(files[0]))
    details = interp.get_input_details()
    if len(details) != len(feeds):
        return False, f"tflite has {len(details)} inputs, onnx {len(feeds)}"
    details = _match_by_name(details, [vi.name for vi in inputs])
    chosen = []
    for d, value in zip(details, feeds):
        value = np.asarray(value)
        signature = list(d.get("shape_signature", d["shape"]))
        candidates = list(_nhwc_variants(value)) + ([value.reshape(-1)] if len(signature) == 1 else [])
        fits = [v for v in candidates if len(v.shape) == len(signature) and
                all(s in (-1, n) for s, n in zip(signature, v.shape))]
        if not fits:
            return False, f"input shape {list(value.shape)} does not fit the tflite input {signature}"
        chosen.append((d["index"], fits[0].astype(d["dtype"])))
        if list(fits[0].shape) != list(d["shape"]):
            interp.resize_tensor_input(d["index"], list(fits[0].shape))
    interp.allocate_tensors()
    for index, value in chosen:
        interp.set_tensor(index, value)
    interp.invoke()
    out_details = _match_by_name(interp.get_output_details(), [vi.name for vi in model.graph.output])
    outs = [interp.get_tensor(d["index"]) for d in out_details]
    if len(outs) != len(expected):
        return False, f"tflite has {len(outs)} outputs, onnx {len(expected)}"
    for i, (e, o) in enumerate(zip(expected, outs)):
        e = np.asarray(e)
        if not any(_same(np.asarray(v).astype(e.dtype) if e.dtype.kind not in "OSUV" else v, e)
                   for v in _nchw_variants(o)):
            return False, f"output {i} differs from the reference"
    return True, ""


def _clean(name: str) -> str:
    name = name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def _match_by_name(details: list[dict], onnx_names: list[str]) -> list[dict]:
    """TFLite inputs in the ONNX model's input order (by name where onnx2tf kept it, else as listed)."""
    by_name = {_clean(d["name"]): d for d in details}
    if all(n in by_name for n in onnx_names):
        return [by_name[n] for n in onnx_names]
    return details


def _nchw_variants(array: np.ndarray):
    yield array
    if 3 <= np.ndim(array) <= 5:
        yield np.moveaxis(array, -1, 1)


def run_tflite(tests: list[Path], python: str, workdir: Path) -> dict[str, tuple[bool, str]]:
    """Drive tflite_worker in `python` (onnx2tf's venv), restarting it after a crash."""
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
        # onnx2tf 1.29 fetches this sample for any 4-D 3-channel input; offline it must already be here
        sample = workdir / "calibration_image_sample_data_20x128x128x3_float32.npy"
        if not sample.exists():
            np.save(sample, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--tflite-worker", str(tests_file),
                               str(results_file), str(workdir)], capture_output=True, text=True, cwd=workdir)
        for line in results_file.read_text().splitlines():
            r = json.loads(line)
            done[r["test"]] = (r["works"], r["why"])
        nxt = [t for t in tests if t.name not in done]
        if nxt and proc.returncode != 0:        # the worker died on nxt[0]: count it as failed, go on
            crashed = nxt[0].name
            with results_file.open("a") as f:
                f.write(json.dumps({"test": crashed, "works": False, "why": f"crashed (rc {proc.returncode})"}) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-dir", type=Path, help="onnx/backend/test/data/node folder")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--filter", default="", help="only tests whose name contains this")
    parser.add_argument("--json", type=Path, help="write per-test results here")
    parser.add_argument("--tflite-python", help="python of a venv with onnx2tf 1.29.24: also measure the tflite route")
    parser.add_argument("--tflite-every", type=int, default=8, help="tflite route: every Nth node test (conversions are slow)")
    parser.add_argument("--tflite-offset", type=int, default=0, help="tflite route: start at this test (another sample)")
    parser.add_argument("--tflite-workdir", type=Path, default=Path("/tmp/edgebuild-tflite-honesty"))
    parser.add_argument("--tflite-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tflite_worker:
        tflite_worker(*(Path(p) for p in args.tflite_worker))
        return 0

    from edgebuild.coverage import check_model

    node_dir = args.node_dir or node_test_dir()
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
        results.append({"test": test.name, "predicted": predicted, "actual": works,
                         "checker": why_predicted, "onnxruntime": why})

    n = len(results)
    agree = sum(r["predicted"] == r["actual"] for r in results)
    tp = sum(r["predicted"] and r["actual"] for r in results)
    tn = sum(not r["predicted"] and not r["actual"] for r in results)
    fp = [r for r in results if r["predicted"] and not r["actual"]]
    fn = [r for r in results if not r["predicted"] and r["actual"]]
    print(f"onnx node tests: {n} (onnx 1.22.0 wheel); onnxruntime {onnxruntime.__version__} CPU")
    print(f"agreement: {agree}/{n} = {agree / n:.2%}")
    print(f"  predicted supported and works: {tp}; predicted unsupported and fails: {tn}")
    print(f"  predicted supported but fails or mismatches: {len(fp)}; predicted unsupported but works: {len(fn)}")
    print(f"  checker crashes: {crashed}; checker time {t_check:.1f} s total, {1000 * t_check / max(n, 1):.1f} ms/model")
    print("\ndisagreements (checker said supported, onnxruntime failed):")
    for r in fp:
        print(f"  {r['test']}: {r['onnxruntime']}")
    print("\ndisagreements (checker said unsupported, onnxruntime worked):")
    for r in fn:
        print(f"  {r['test']}: {r['checker']}")
    if args.tflite_python:
        report_tflite(tests[args.tflite_offset:: args.tflite_every], args)
    else:
        print("\ntflite route: not measured (pass --tflite-python, a venv with onnx2tf 1.29.24)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def report_tflite(tests: list[Path], args) -> None:
    from edgebuild.coverage import check_model

    t0 = time.perf_counter()
    actual = run_tflite(tests, args.tflite_python, args.tflite_workdir)
    rows = []
    for test in tests:
        report = check_model(test / "model.onnx", "tflite", {})
        works, why = actual[test.name]
        rows.append((test.name, report.ok, works, report.summary_line(), why))
    n = len(rows)
    agree = sum(p == w for _, p, w, _, _ in rows)
    print(f"\ntflite route (onnx2tf float32 conversion + LiteRT interpreter vs reference), every "
          f"{args.tflite_every}th node test from #{args.tflite_offset}: {n} tests, {time.perf_counter() - t0:.0f} s")
    print(f"agreement: {agree}/{n} = {agree / max(n, 1):.2%}")
    print(f"  predicted supported and works: {sum(p and w for _, p, w, _, _ in rows)}; "
          f"predicted unsupported and fails: {sum(not p and not w for _, p, w, _, _ in rows)}")
    for name, p, w, checker, why in rows:
        if p != w:
            print(f"  {name}: checker {'supported' if p else 'unsupported'}, onnx2tf/LiteRT "
                  f"{'works' if w else 'fails: ' + why}" + ("" if p else f" [{checker[-120:]}]"))


if __name__ == "__main__":
    sys.exit(main())
