"""Calibration and evaluation data: .npz files with one array per model input (batch first), and
for evaluation optionally `labels`.

A sample is one run of the model. An input with a fixed leading dimension takes that many rows per
sample (a VAD fed a batch of 4 audio windows and one LSTM state: `input` 4 rows, `h` 1 row), so
each array holds samples x rows; an input whose leading dimension is dynamic takes the model's
fixed batch (the first input's), else 1 row."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from edgebuild.errors import StepFailed


def load_npz(path: Path, input_names: list[str], what: str, specs: list[dict] | None = None) -> dict:
    """The arrays of a calibration/evaluation .npz, checked: every model input present, the same
    sample count, only finite values, and where `specs` (describe_io's inputs) are given the rank,
    fixed dims and dtype each input expects (float data is cast to the input's float type). Every
    problem is one line naming the file, the array and what was expected."""
    import numpy as np

    where = f"{what} data {Path(path).name}"
    arrays = read_npz(path, where)
    missing = [n for n in input_names if n not in arrays]
    if missing:
        raise StepFailed(
            f"{where} has no array for model input(s) {', '.join(missing)} "
            f"(arrays: {', '.join(sorted(arrays))})"
        )
    for name in input_names:
        if arrays[name].ndim == 0:
            raise StepFailed(
                f"{where}: array '{name}' is a scalar; it needs a batch axis first (samples, ...)"
            )
    for spec in specs or []:
        if spec["name"] in arrays:
            arrays[spec["name"]] = _checked_input(arrays[spec["name"]], spec, where)
    rows = sample_rows(specs) if specs else {}
    counts = {len(arrays[n]) // rows.get(n, 1) for n in input_names}
    if len(counts) != 1:
        raise StepFailed(
            f"{where}: inputs have different sample counts "
            + ", ".join(
                f"'{n}' {len(arrays[n]) // rows.get(n, 1)}"
                + (f" ({len(arrays[n])} rows of {rows[n]})" if rows.get(n, 1) > 1 else "")
                for n in input_names
            )
        )
    if 0 in counts:
        raise StepFailed(f"{where}: array '{input_names[0]}' holds no samples")
    for name in input_names:
        array = arrays[name]
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array.reshape(len(array), -1))).any(axis=1).sum())
            raise StepFailed(
                f"{where}: array '{name}' holds NaN or inf values ({bad} of {len(array)} samples); "
                f"inputs must be finite"
            )
    if "labels" in arrays and what == "evaluation":
        labels = arrays["labels"]
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = arrays["labels"] = labels.reshape(-1)
        if labels.ndim != 1 or labels.dtype.kind not in "iub":
            raise StepFailed(
                f"{where}: array 'labels' has shape {tuple(labels.shape)} and dtype {labels.dtype}; "
                f"expected one integer class id per sample, shape ({len(arrays[input_names[0]])},)"
            )
        if len(labels) != len(arrays[input_names[0]]):
            raise StepFailed(
                f"{where}: array 'labels' has {len(labels)} entries for {len(arrays[input_names[0]])} "
                f"samples of '{input_names[0]}'"
            )
    return arrays


def read_npz(path: Path, where: str) -> dict:
    """Every array of an .npz file, read without unpickling (the file is untrusted input): the one
    place calibration/evaluation data is read. `where` names the file in messages, e.g.
    "calibration data calib.npz". Raises StepFailed with one line for a file that is not a readable
    .npz, a single .npy array, or an array of Python objects."""
    import zipfile

    import numpy as np

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _unreadable(where, exc) from None
    if not isinstance(data, np.lib.npyio.NpzFile):  # np.load reads a .npy as one bare array
        raise StepFailed(f"{where} is a single .npy array, not an .npz with one array per model input")
    try:
        with data:
            arrays = {}
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError:
                    raise StepFailed(
                        f"{where}: array '{key}' holds Python objects (pickled), which are not "
                        f"loaded; save plain numeric arrays"
                    ) from None
    except StepFailed:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _unreadable(where, exc) from None
    return arrays


def _unreadable(where: str, exc: Exception) -> StepFailed:
    return StepFailed(
        f"{where} is not a readable .npz file ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})"
    )


def _checked_input(array, spec: dict, where: str):
    """One input array against the model input it feeds: batch-first, same rank, fixed dims equal,
    a compatible dtype (cast to the input's own)."""
    import numpy as np

    shape = spec.get("shape") or []
    expected = (
        "(" + ", ".join(["N"] + [str(d) if isinstance(d, int) else (d or "?") for d in shape[1:]]) + ")"
    )
    if shape and (
        array.ndim != len(shape)
        or any(isinstance(d, int) and d != got for d, got in zip(shape[1:], array.shape[1:]))
    ):
        raise StepFailed(
            f"{where}: array '{spec['name']}' has shape {tuple(array.shape)}; model input "
            f"'{spec['name']}' expects {expected} (samples first)"
        )
    if shape and isinstance(shape[0], int) and shape[0] > 1 and len(array) < shape[0]:
        raise StepFailed(
            f"{where}: array '{spec['name']}' has {len(array)} samples; the model's fixed batch "
            f"needs at least {shape[0]}"
        )
    dtype = spec.get("dtype")
    if not dtype:
        return array
    want = np.dtype(dtype)
    ok = (
        (want.kind == "f" and array.dtype.kind in "fiub")
        or (want.kind in "iu" and array.dtype.kind in "iub")
        or (want.kind == "b" and array.dtype.kind in "biu")
    )
    if not ok:
        raise StepFailed(
            f"{where}: array '{spec['name']}' has dtype {array.dtype}; model input '{spec['name']}' "
            f"expects {want.name} {expected}"
        )
    return array.astype(want, copy=False)


def _leading_dim(spec: dict) -> int | None:
    """The input's fixed leading dim, or None where it is dynamic (named, None, 0 or -1) or absent."""
    shape = spec.get("shape") or []
    return shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None


def sample_rows(specs: list[dict]) -> dict[str, int]:
    """Rows of each input's array that one sample (one model run) takes: the input's fixed leading
    dim, else the first input's fixed batch, else 1. specs: [{"name", "shape"}]."""
    default = (_leading_dim(specs[0]) if specs else None) or 1
    return {s["name"]: _leading_dim(s) or default for s in specs}


def feed_rows(specs: list[dict]) -> dict[str, int] | None:
    """sample_rows, or None when every input's batch is dynamic (the whole set can run at once)."""
    if all(_leading_dim(s) is None for s in specs):
        return None
    return sample_rows(specs)


def batches(
    arrays: dict, input_names: list[str], rows: dict[str, int] | None, limit: int | None = None
) -> Iterator[dict]:
    """Feeds of one sample each (`rows`: sample_rows), or everything at once when rows is None.
    `limit` caps the rows of the first input used."""
    first = input_names[0]
    if rows is None:
        total = len(arrays[first]) if limit is None else min(len(arrays[first]), limit)
        if total:
            yield {n: arrays[n][:total] for n in input_names}
        return
    count = min(len(arrays[n]) // rows.get(n, 1) for n in input_names)
    if limit is not None:
        count = min(count, limit // rows.get(first, 1))
    for k in range(count):
        yield {n: arrays[n][k * rows.get(n, 1) : (k + 1) * rows.get(n, 1)] for n in input_names}


def stratified_sample(labels, count: int, seed: int = 0):
    """Indices of up to `count` samples keeping each class's share (at least one per class)."""
    import numpy as np

    labels = np.asarray(labels)
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    classes, counts = np.unique(labels, return_counts=True)
    for cls, n in zip(classes, counts):
        take = max(1, round(count * n / len(labels)))
        idx = np.flatnonzero(labels == cls)
        chosen.extend(rng.choice(idx, min(take, len(idx)), replace=False))
    return np.sort(np.array(chosen))


# --- inputs when the model has no data ---------------------------------------------------------


def _range_for(name: str, input_range: dict | None) -> list[float] | None:
    if not input_range:
        return None
    return input_range.get(name) or input_range.get("*")


def generate_inputs(
    specs: list[dict],
    count: int = 32,
    seed: int = 0,
    input_shapes: dict | None = None,
    input_range: dict | None = None,
    mean=None,
    std=None,
) -> dict:
    """Reproducible model inputs made from the inputs' dtypes alone: {name: array of `count` samples}.

    specs: [{"name", "shape", "dtype"}] (describe_io's inputs); a dynamic dim takes its size from
    input_shapes, else the same guess `init` makes (never 1 but for the batch). Floats are uniform in
    the user's input_range [low, high] when declared, else normal with the user's mean/std (scalars),
    else standard normal; integers uniform in [low, high) of input_range, else 0 or 1; bools random.
    A fixed batch axis > 1 is kept (samples are then whole batches of it)."""
    import numpy as np

    from edgebuild.input_shapes import choose

    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in specs:
        name, dtype = spec["name"], np.dtype(spec.get("dtype") or "float32")
        shape = list((input_shapes or {}).get(name) or choose(name, dtype.name, spec["shape"], None).shape)
        per_sample = shape[1:] if shape else []
        size = [count * (shape[0] if shape else 1)] + per_sample if shape else [count]
        bounds = _range_for(name, input_range)
        if dtype.kind == "f":
            if bounds:
                values = rng.uniform(bounds[0], bounds[1], size)
            else:
                values = rng.standard_normal(size) * (1.0 if std is None else float(std)) + (
                    0.0 if mean is None else float(mean)
                )
        elif dtype.kind in "iu":
            low, high = (int(bounds[0]), int(bounds[1])) if bounds else (0, 2)
            values = rng.integers(low, max(high, low + 1), size)
        elif dtype.kind == "b":
            values = rng.integers(0, 2, size).astype(bool)
        else:
            raise StepFailed(
                f"input '{name}' has dtype {dtype.name}: no inputs can be generated for it; "
                f"give the model evaluation or calibration data"
            )
        arrays[name] = np.asarray(values).astype(dtype)
    return arrays


def describe_generated(specs: list[dict], count: int, input_range: dict | None, mean=None, std=None) -> str:
    kinds = []
    for spec in specs:
        bounds = _range_for(spec["name"], input_range)
        if bounds:
            kinds.append(f"{spec['name']} uniform in [{bounds[0]:g}, {bounds[1]:g}]")
        elif "float" in (spec.get("dtype") or "float32") and (mean is not None or std is not None):
            kinds.append(f"{spec['name']} normal(mean {mean or 0:g}, std {1 if std is None else std:g})")
        else:
            kinds.append(
                f"{spec['name']} {'standard normal' if 'float' in (spec.get('dtype') or 'float') else 'random'}"
                f" {spec.get('dtype') or 'float32'}"
            )
    return f"generated inputs ({count} samples: {', '.join(kinds)}; no labels)"


def verification_data(
    inputs: dict, specs: list[dict], params: dict, count: int = 32
) -> tuple[dict, object, str]:
    """What a verify step compares source and artifact on: the evaluation data, else the calibration
    data, else generated inputs (see generate_inputs). Returns (arrays, labels or None, a line saying
    which, for metrics["data"]). inputs: the step's role -> path; params may carry input_shapes,
    input_range, mean, std."""
    names = [s["name"] for s in specs]
    for role in ("evaluation", "calibration"):
        if inputs.get(role):
            path = Path(inputs[role])
            arrays = load_npz(path, names, role, specs=specs)
            labels = arrays.get("labels") if role == "evaluation" else None
            samples = len(arrays[names[0]]) // sample_rows(specs)[names[0]]
            what = (
                f"{role} data {path.name} ({samples} samples"
                + ("" if labels is not None else ", no labels")
                + ")"
            )
            return arrays, labels, what
    arrays = generate_inputs(
        specs,
        count,
        input_shapes=params.get("input_shapes"),
        input_range=params.get("input_range"),
        mean=_scalar(params.get("mean")),
        std=_scalar(params.get("std")),
    )
    return (
        arrays,
        None,
        describe_generated(
            specs, count, params.get("input_range"), _scalar(params.get("mean")), _scalar(params.get("std"))
        ),
    )


def _scalar(value):
    """mean/std parameters may be per channel: only a scalar describes a generated distribution."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
