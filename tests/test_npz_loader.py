"""The one npz reader every recipe's calibration/evaluation data goes through (edgebuild.evaldata),
below the steps: hostile files give the same one-line StepFailed whichever step reads them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebuild.evaldata import load_npz, read_npz
from edgebuild.steps.base import StepFailed
from edgebuild.steps.coreml import evaluation_set
from edgebuild.steps.tensorrt import calibration_data


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((4, 3), dtype=np.float32))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    return {
        "pickled": (pickled, "array 'x' holds Python objects (pickled), which are not loaded"),
        "single": (single, "is a single .npy array, not an .npz with one array per model input"),
        "garbage": (garbage, "is not a readable .npz file ("),
    }


@pytest.mark.parametrize("case", ["pickled", "single", "garbage"])
def test_every_recipe_rejects_a_hostile_file_the_same_way(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    readers = {
        "evaldata": lambda: load_npz(path, ["x"], "calibration"),
        "tensorrt": lambda: calibration_data.load(path),
        "coreml": lambda: evaluation_set.load(path, [], 8),
    }
    for name, read in readers.items():
        with pytest.raises(StepFailed) as err:
            read()
        text = str(err.value)
        assert message in text and path.name in text and "\n" not in text, (name, text)


def test_reader_returns_every_array(tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, x=np.ones((3, 2), np.float32), labels=np.arange(3))
    arrays = read_npz(path, "calibration data calib.npz")
    assert sorted(arrays) == ["labels", "x"] and arrays["x"].shape == (3, 2)
    assert calibration_data.load(path)["labels"].tolist() == [0, 1, 2]


def test_the_loader_lives_below_the_steps():
    """Toolchain interpreters import edgebuild.evaldata with numpy alone: it must not pull in the steps."""
    code = (
        "import sys, edgebuild.evaldata; print(sorted(m for m in sys.modules if m.startswith('edgebuild')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "edgebuild.steps" not in out and "edgebuild.evaldata" in out
