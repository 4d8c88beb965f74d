"""Concrete shapes for a model's dynamic input dimensions, for `init` and the quick `check MODEL`:
from the model's own metadata where it carries them (e.g. an `imgsz` property), otherwise a named
guess. A guess is never 1 for a spatial or sequence axis: real models fail on 1-wide windows, pads
and concats when dynamic dims are filled with 1 (only a batch axis becomes 1)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SIZE = 224  # the usual classifier input; said to be a guess wherever it is used
SEQUENCE_LENGTH = 128  # token ids, masks, feature frames
AUDIO_SAMPLES = 16000  # one second at 16 kHz for raw-audio inputs
OTHER = 32
SIZE_KEYS = re.compile(r"imgsz|img_size|image_size|input_size|input_shape|resolution", re.IGNORECASE)
AUDIO_NAMES = re.compile(r"audio|wav|pcm|speech|signal|input_values|waveform", re.IGNORECASE)


@dataclass
class InputShape:
    name: str
    dtype: str | None
    model_shape: list  # as the model declares it: ints, names or None
    shape: list[int]  # the concrete shape chosen
    notes: list[str] = field(default_factory=list)  # how each dynamic axis was filled

    @property
    def dynamic(self) -> bool:
        return any(not isinstance(d, int) for d in self.model_shape)


def metadata_image_size(props: dict[str, str]) -> tuple[tuple[int, int], str] | None:
    """(height, width) and the property it came from, from metadata like imgsz = "[640, 640]"."""
    for key, value in props.items():
        if not SIZE_KEYS.search(key):
            continue
        numbers = [int(n) for n in re.findall(r"\d+", value)]
        if len(numbers) == 1 and numbers[0] > 1:
            return (numbers[0], numbers[0]), key
        if len(numbers) == 2 and min(numbers) > 1:
            return (numbers[0], numbers[1]), key
        if len(numbers) == 4 and min(numbers[2:]) > 1:  # a full NCHW shape
            return (numbers[2], numbers[3]), key
    return None


def _spatial_axes(shape: list) -> tuple[int, int]:
    """The height and width axes of a rank-4 image input: NCHW unless the last axis looks like channels."""
    if isinstance(shape[1], int) and shape[1] in (1, 2, 3, 4):
        return 2, 3
    if isinstance(shape[3], int) and shape[3] in (1, 3, 4):
        return 1, 2
    return 2, 3


@dataclass(frozen=True)
class Guess:
    """The sizes a guessed dimension takes: image height/width, and every other length."""

    image: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)
    length: int | None = None  # None: by kind (sequence 128, raw audio 16000, other 32)


# tried in order when onnxruntime cannot run the model with the first guess
ALTERNATIVES = [
    Guess((320, 320)),
    Guess((640, 640)),
    Guess((48, 320)),
    Guess((32, 128)),
    Guess((512, 512)),
    Guess(length=16000),
    Guess(length=64),
    Guess(length=32),
    Guess(length=256),
    Guess(length=1000),
]


def choose(
    name: str,
    dtype: str | None,
    model_shape: list,
    size: tuple[tuple[int, int], str] | None,
    guess: Guess = Guess(),
) -> InputShape:
    shape = list(model_shape)
    notes: list[str] = []
    rank = len(shape)
    spatial: tuple[int, ...] = _spatial_axes(shape) if rank == 4 and dtype and "float" in dtype else ()
    for axis, dim in enumerate(model_shape):
        if isinstance(dim, int):
            continue
        label = f"axis {axis}" + (f" ('{dim}')" if isinstance(dim, str) else "")
        if axis == 0 and rank >= 2:
            shape[axis] = 1
            notes.append(f"{label}: batch, 1")
        elif axis in spatial:
            if size is not None:
                shape[axis] = size[0][spatial.index(axis)]
                notes.append(f"{label}: {shape[axis]} from the model's metadata '{size[1]}'")
            else:
                shape[axis] = guess.image[spatial.index(axis)]
                notes.append(
                    f"{label}: {shape[axis]}, a guess (an image size): set the size the model was trained on"
                )
        elif rank <= 2 and dtype and "float" in dtype and AUDIO_NAMES.search(name):
            shape[axis] = guess.length or AUDIO_SAMPLES
            notes.append(f"{label}: {shape[axis]}, a guess (audio samples)")
        elif rank >= 2 or (dtype and "int" in dtype):
            shape[axis] = guess.length or SEQUENCE_LENGTH
            notes.append(f"{label}: {shape[axis]}, a guess (sequence length)")
        else:
            shape[axis] = guess.length or OTHER
            notes.append(f"{label}: {shape[axis]}, a guess")
    return InputShape(name=name, dtype=dtype, model_shape=list(model_shape), shape=shape, notes=notes)


def choose_shapes(model_path: Path, probe: bool = True, model=None) -> tuple[list[InputShape], str]:
    """A concrete shape for every input of an ONNX model, and what onnxruntime said of them ("" when
    not probed). When it cannot run the model with the first guess, the other guesses in
    ALTERNATIVES are tried and the first that runs is taken (and said so)."""
    from edgebuild.onnxinfo import describe_io, read_onnx

    model = model if model is not None else read_onnx(model_path)
    props = {p.key: p.value for p in model.metadata_props}
    size = metadata_image_size(props)
    specs = describe_io(model)["inputs"]
    first = [choose(v["name"], v["dtype"], v["shape"], size) for v in specs]
    if not probe or not any(c.dynamic for c in first):
        return first, ""
    runner = _Probe(model_path, specs)
    error = runner(first)
    if error is None:
        return first, f"onnxruntime runs the model with these shapes (outputs {runner.outputs})"
    if any("guess" in n for c in first for n in c.notes):
        tried = {json.dumps([c.shape for c in first])}
        for guess in ALTERNATIVES:
            other = [choose(v["name"], v["dtype"], v["shape"], size, guess) for v in specs]
            key = json.dumps([c.shape for c in other])
            if key in tried:
                continue
            tried.add(key)
            if runner(other) is None:
                firsts = ", ".join(f"{c.name}={c.shape}" for c in first if c.dynamic)
                return other, (
                    f"onnxruntime runs the model with these shapes (outputs {runner.outputs}); "
                    f"it could not with the first guess {firsts}: {error}"
                )
    return first, f"onnxruntime could NOT run the model with these shapes: {error}"


class _Probe:
    """Runs the model once in onnxruntime with generated inputs of given shapes; None when it runs,
    else the error's first line."""

    def __init__(self, path: Path, specs: list[dict]) -> None:
        self.path, self.specs, self.session, self.outputs = path, specs, None, ""

    def __call__(self, choices: list[InputShape]) -> str | None:
        try:
            import onnxruntime as ort

            from edgebuild.evaldata import generate_inputs

            if self.session is None:
                options = ort.SessionOptions()
                options.log_severity_level = 4  # the error comes back as an exception, once
                self.session = ort.InferenceSession(
                    str(self.path), options, providers=["CPUExecutionProvider"]
                )
            feed = generate_inputs(self.specs, count=1, input_shapes={c.name: c.shape for c in choices})
            outputs = self.session.run(None, feed)
            self.outputs = ", ".join(json.dumps(list(o.shape)) for o in outputs)
            return None
        except Exception as exc:  # reported, not fatal: the user fixes the shapes
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return text[:300]


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """`--input-shape NAME=D,D,...` -> (NAME, [D, ...]); ValueError with the reason otherwise."""
    name, sep, dims = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--input-shape {text!r}: expected NAME=D,D,... (e.g. x=1,3,224,224)")
    try:
        shape = [int(d) for d in dims.strip().strip("[]").split(",")]
    except ValueError:
        raise ValueError(f"--input-shape {text!r}: dimensions must be positive integers") from None
    if not shape or any(d <= 0 for d in shape):
        raise ValueError(f"--input-shape {text!r}: dimensions must be positive integers")
    return name.strip(), shape
