"""Concrete shapes for a model's dynamic input dimensions, for `init` and the quick `check MODEL`:
from the model's own metadata where it carries them (e.g. an `imgsz` property), otherwise a named
guess. A guess is never 1 for a spatial or sequence axis: real models fail on 1-wide windows, pads
and concats when dynamic dims are filled with 1 (only a batch axis becomes 1)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SIZE = 224          # the usual classifier input; said to be a guess wherever it is used
SEQUENCE_LENGTH = 128     # token ids, masks, feature frames
AUDIO_SAMPLES = 16000     # one second at 16 kHz for raw-audio inputs
OTHER = 32
SIZE_KEYS = re.compile(r"imgsz|img_size|image_size|input_size|input_shape|resolution", re.IGNORECASE)
AUDIO_NAMES = re.compile(r"audio|wav|pcm|speech|signal|input_values|waveform", re.IGNORECASE)


@dataclass
class InputShape:
    name: str
    dtype: str | None
    model_shape: list                      # as the model declares it: ints, names or None
    shape: list[int]                       # the concrete shape chosen
    notes: list[str] = field(default_factory=list)   # how each dynamic axis was filled

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
        if len(numbers) == 4 and min(numbers[2:]) > 1:      # a full NCHW shape
            return (numbers[2], numbers[3]), key
    return None


def _spatial_axes(shape: list) -> tuple[int, int]:
    """The height and width axes of a rank-4 image input: NCHW unless the last axis looks like channels."""
    if isinstance(shape[1], int) and shape[1] in (1, 2, 3, 4):
        return 2, 3
    if isinstance(shape[3], int) and shape[3] in (1, 3, 4):
        return 1, 2
    return 2, 3


def choose(name: str, dtype: str | None, model_shape: list, size: tuple[tuple[int, int], str] | None) -> InputShape:
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
                shape[axis] = IMAGE_SIZE
                notes.append(f"{label}: {IMAGE_SIZE}, a guess (a common image size): set the size the model "
                             f"was trained on")
        elif rank <= 2 and dtype and "float" in dtype and AUDIO_NAMES.search(name):
            shape[axis] = AUDIO_SAMPLES
            notes.append(f"{label}: {AUDIO_SAMPLES}, a guess (1 s of 16 kHz audio)")
        elif rank >= 2 or (dtype and "int" in dtype):
            shape[axis] = SEQUENCE_LENGTH
            notes.append(f"{label}: {SEQUENCE_LENGTH}, a guess (sequence length)")
        else:
            shape[axis] = OTHER
            notes.append(f"{label}: {OTHER}, a guess")
    return InputShape(name=name, dtype=dtype, model_shape=list(model_shape), shape=shape, notes=notes)


def choose_shapes(model_path: Path) -> list[InputShape]:
    """A concrete shape for every input of an ONNX model."""
    import onnx

    from edgebuild.onnxinfo import describe_io

    model = onnx.load(str(model_path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    size = metadata_image_size(props)
    return [choose(v["name"], v["dtype"], v["shape"], size) for v in describe_io(model)["inputs"]]


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
