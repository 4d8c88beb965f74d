"""edgetpu.compile: compile a full-integer .tflite with Google's `edgetpu_compiler`.

The compiler exists only as an x86-64 Linux package from Google's own apt repository. When it is
on PATH its operation log replaces the predicted TPU/CPU split in the coverage report; when it is
not, the step raises Deferred: the bundle ships the int8 .tflite (which the Edge TPU runtime can
still run on the CPU) with the prediction, and says that compiling remains to be done.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .base import Deferred, Step, StepContext, StepFailed

_OP_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*)$")
MAPPED = "Mapped to Edge TPU"


class EdgetpuCompileStep(Step):
    name = "edgetpu.compile"
    version = "1"
    tools = ("edgetpu_compiler",)
    inputs = ("model",)
    outputs = ("model_edgetpu.tflite", "edgetpu_compiler.log")

    def run(self, ctx: StepContext) -> dict[str, Any]:
        compiler = shutil.which("edgetpu_compiler")
        if compiler is None:
            raise Deferred(
                "edgetpu_compiler is not on PATH (it comes from Google's Coral apt repository, "
                "x86-64 Linux only); the bundle ships the int8 TFLite with the predicted Edge TPU "
                "mapping; compile it with `edgetpu_compiler -s model.tflite` on such a host"
            )
        model = Path(ctx.input("model"))
        work = ctx.out / "_work"
        work.mkdir()
        src = work / "model.tflite"
        shutil.copyfile(model, src)
        cmd = [compiler, "-s", "-o", str(work)]
        if ctx.params.get("min_runtime_version"):
            cmd += ["-m", str(ctx.params["min_runtime_version"])]
        timeout = int(ctx.params.get("timeout_s", 600))
        try:
            proc = subprocess.run(cmd + [str(src)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StepFailed(f"edgetpu_compiler did not finish within {timeout} s") from None
        stdout = proc.stdout + proc.stderr
        compiled, log_file = work / "model_edgetpu.tflite", work / "model_edgetpu.log"
        if proc.returncode != 0 or not compiled.is_file():
            last = [ln for ln in stdout.splitlines() if ln.strip()][-1:] or ["no output"]
            raise StepFailed(f"edgetpu_compiler failed (exit {proc.returncode}): {last[0]}")
        log = log_file.read_text() if log_file.is_file() else stdout
        shutil.move(compiled, ctx.output("model_edgetpu.tflite"))
        ctx.output("edgetpu_compiler.log").write_text(stdout + ("\n" + log if log != stdout else ""))
        shutil.rmtree(work)
        coverage = parse_compiler_log(log, stdout)
        return {
            "coverage": coverage,
            "compiler_version": _version(stdout),
            "metrics": {
                "size_bytes": ctx.output("model_edgetpu.tflite").stat().st_size,
                "edgetpu_subgraphs": coverage.get("edgetpu_subgraphs"),
            },
        }


def parse_compiler_log(log: str, stdout: str = "") -> dict[str, Any]:
    """Coverage from the compiler's operation table ("Operator  Count  Status"), in the same shape
    as the prediction (edgebuild.coverage.partition.Partition.to_json) with source "edgetpu_compiler"."""
    from edgebuild.coverage.partition import (
        FALLBACK,
        RESTRICTION,
        SUPPORTED,
        UNSUPPORTED,
        OpPlacement,
        Partition,
    )

    part = Partition()
    in_table = False
    for line in log.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status", line):
            in_table = True
            continue
        m = _OP_LINE.match(line.strip()) if in_table else None
        if not m:
            continue
        op, count, status = m.group(1), int(m.group(2)), m.group(3).strip()
        mapped = status.startswith(MAPPED)
        kind = (
            SUPPORTED
            if mapped
            else FALLBACK
            if "otherwise supported" in status
            else UNSUPPORTED
            if "not supported" in status.lower()
            else RESTRICTION
        )
        for _ in range(count):
            part.placements.append(
                OpPlacement(len(part.placements), op, mapped, kind, "" if mapped else status, 0)
            )
        if not mapped and kind != FALLBACK and part.first_fallback_op is None:
            part.first_fallback_op, part.first_fallback_reason = op, status
    if not in_table:
        raise StepFailed("edgetpu_compiler's log has no operation table (Operator / Count / Status)")
    coverage = {"device": "edgetpu", "source": "edgetpu_compiler", **part.to_json()}
    for key, pattern in (
        ("edgetpu_subgraphs", r"Number of Edge TPU subgraphs:\s*(\d+)"),
        ("compiler_ops_on_tpu", r"Number of operations that will run on Edge TPU:\s*(\d+)"),
        ("compiler_ops_on_cpu", r"Number of operations that will run on CPU:\s*(\d+)"),
    ):
        m = re.search(pattern, stdout + "\n" + log)
        if m:
            coverage[key] = int(m.group(1))
    return coverage


def _version(text: str) -> str:
    m = re.search(r"Edge TPU Compiler version ([\w.]+)", text)
    return m.group(1) if m else "unknown"


STEPS = {EdgetpuCompileStep.name: EdgetpuCompileStep}
