"""The converter chain: ONNX -> float .tflite, each route tried in order until one works.

Chosen by measurement on real third-party models (README, Recipes): onnx2tf 2.x's
`flatbuffer_direct` backend converted 5 of 7 where its TensorFlow backend (onnx2tf 1.29) converted
1, in 2-7 s instead of 37-46 s, and installs no TensorFlow. The routes:

1. `flatbuffer_direct` on the onnxsim-folded model;
2. `flatbuffer_direct` on the unfolded static model (some folds produce patterns the direct
   builder rejects, and the reverse);
3. onnx2tf's `tf_converter` backend on the folded model, only where TensorFlow is installed in the
   toolchain environment (it is not by default: see README, Limitations).

A route counts as working only when LiteRT can load and allocate what it wrote and the file has no
Flex or custom ops (a Flex model converts but no stock runtime runs it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Route:
    name: str  # recorded in the manifest's provenance
    backend: str  # onnx2tf's tflite_backend
    model: str  # "simplified" | "static"


ROUTES = (
    Route("onnx2tf flatbuffer_direct (folded)", "flatbuffer_direct", "simplified"),
    Route("onnx2tf flatbuffer_direct (unfolded)", "flatbuffer_direct", "static"),
    Route("onnx2tf tf_converter", "tf_converter", "simplified"),
)


class RouteFailed(Exception):
    """One route failed; the message is one line naming the op where onnx2tf says which."""


def available(route: Route) -> bool:
    return route.backend != "tf_converter" or importlib.util.find_spec("tensorflow") is not None


def convert(route: Route, model_path: Path, out_dir: Path, node_types: dict[str, str]) -> dict[str, Path]:
    """Run one route; returns {"fp32": path, "fp16": path or missing} of files it wrote."""
    import onnx2tf

    buf = io.StringIO()
    cwd = os.getcwd()
    os.chdir(model_path.parent)  # onnx2tf writes scratch files into the working directory
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            # tflite_backend must be explicit: onnx2tf 2.x's convert() takes **kwargs and defaults silently
            onnx2tf.convert(
                input_onnx_file_path=str(model_path),
                output_folder_path=str(out_dir),
                non_verbose=True,
                output_signaturedefs=True,
                tflite_backend=route.backend,
            )
    except SystemExit:
        raise RouteFailed(failure_message(buf.getvalue(), "onnx2tf stopped", node_types)) from None
    except Exception as exc:
        raise RouteFailed(
            failure_message(
                buf.getvalue() + f"\n{type(exc).__name__}: {_first_line(exc)}",
                f"{type(exc).__name__}: {_first_line(exc)}",
                node_types,
            )
        ) from None
    finally:
        os.chdir(cwd)
    found = {
        "fp32": sorted(out_dir.glob("*_float32.tflite")),
        "fp16": sorted(out_dir.glob("*_float16.tflite")),
    }
    if not found["fp32"]:
        raise RouteFailed(failure_message(buf.getvalue(), "onnx2tf wrote no float32 .tflite", node_types))
    files = {k: v[0] for k, v in found.items() if v}
    _check_runnable(files["fp32"])
    return files


def _check_runnable(path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from .schema import read_model

    ops = {op.op for op in read_model(path).main.operators}
    custom = sorted(o for o in ops if o.startswith("CUSTOM"))
    if custom:
        raise RouteFailed(f"the converted model needs {custom[0]}, which the stock LiteRT runtime cannot run")
    try:
        Interpreter(str(path)).allocate_tensors()
    except Exception as exc:
        raise RouteFailed(f"LiteRT cannot load the converted model: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:300] if lines else ""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_GENERATED_NAME = re.compile(r"sng_([A-Za-z0-9]+)_\d+")
_EXCEPTION_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception)): (.+)$")


def failure_message(log: str, fallback: str, node_types: dict[str, str] | None = None) -> str:
    """One line naming the ONNX op that failed and why, from onnx2tf's log.

    onnx2tf reports a failing node as `onnx_op_name: NAME`; the op type comes from the model
    (`node_types`). TensorFlow's converter names TFLite ops as 'tfl.NAME'."""
    text = _ANSI.sub("", log)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [m for m in (_EXCEPTION_LINE.match(ln) for ln in lines) if m]
    reason = f"{errors[-1].group(1)}: {errors[-1].group(2)}" if errors else fallback
    names = re.findall(r"onnx_op_name: (\S+)", text)
    if names:
        node = names[-1]
        named = _GENERATED_NAME.fullmatch(node)  # onnx2tf names unnamed nodes sng_<Op>_<n>
        op_type = (node_types or {}).get(node) or (named.group(1) if named else "?")
        return f"op {op_type} (node '{node}') could not be converted by onnx2tf: {reason[:300]}"
    tf_op = re.search(r"'tfl\.(\w+)' op ([^\n]+)", text)
    if tf_op:
        return f"TFLite op {tf_op.group(1).upper()} could not be converted: {tf_op.group(2)[:300]}"
    return reason[:400]
