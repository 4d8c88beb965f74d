"""The TFLite route's 16-bit activation probe (edgebuild/int8_diagnosis.py says why)."""

from __future__ import annotations

from pathlib import Path

from edgebuild.int8_diagnosis import record
from edgebuild.metrics import CONVERTED_OUTPUT_GATE_DEFAULTS

CHECK_SAMPLES = 8  # as the accuracy fallback: calibration samples, against the float .tflite
PROBE_TIMEOUT_S = 900
MARK = CONVERTED_OUTPUT_GATE_DEFAULTS["int8"]["min_output_cosine"]  # below it, verification will fail


def isolated_activation_probe(
    fp32: Path,
    int8: Path,
    quant_type: str,
    samples: list[dict],
    scratch: Path,
    fallback: str,
    int8_cosine=None,
) -> dict | None:
    """activation_probe in a child process: LiteRT can abort on a file it cannot run (seen on
    integer-only files), and the probe must never fail a conversion that produced its artifact.
    A crash, a timeout or an error becomes {"error": ...}; verification then reports the file."""
    import concurrent.futures
    import multiprocessing

    if int8_cosine is not None and int8_cosine >= MARK:
        return None  # known good enough: no probe, no child process
    args = (fp32, int8, quant_type, samples, scratch, fallback, int8_cosine)
    try:
        with concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            return pool.submit(activation_probe, *args).result(timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, TimeoutError, anything the probe raised
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}


def activation_probe(
    fp32: Path,
    int8: Path,
    quant_type: str,
    samples: list[dict],
    scratch: Path,
    fallback: str,
    int8_cosine=None,
) -> dict | None:
    """None when the int8 file agrees with the float one at least as well as the int8 output gate's
    default; else the diagnosis from the same model quantized with 16-bit activations."""
    from .accuracy_fallback import output_cosine, run_outputs
    from .quantize import quantize

    check = samples[:CHECK_SAMPLES]
    reference = run_outputs(fp32, check)
    if int8_cosine is None:
        int8_cosine = output_cosine(reference, int8, check)
    if int8_cosine >= MARK:
        return None
    probe = scratch / "probe-a16.tflite"
    try:
        quantize(fp32, probe, "int8-a16", quant_type, samples)
        a16 = output_cosine(reference, probe, check)
    except Exception as exc:  # noqa: BLE001 - the probe only explains; LiteRT lacks some 16x8 kernels
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}
    return record(
        int8_cosine,
        a16,
        a16 >= MARK,
        fallback,
        f"{len(check)} calibration samples, against the float .tflite",
    )
