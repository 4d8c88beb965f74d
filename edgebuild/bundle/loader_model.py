# ruff: noqa: F821  (reads the loader's globals: HERE, RUNTIME_OPTIONS, the runtime hooks, verify_folder)
# The loader's Python API: a verified bundle whose artifact the runtime hooks load (`load()`,
# `Model.predict`), and the self-test that runs the bundled reference input through it.
#
# Copied verbatim into every generated loader.py (edgebuild/bundle/templates/_common.py.j2).
# Python 3.7; numpy only once a model runs.
import json
from pathlib import Path


def _numpy():
    try:
        import numpy
    except ImportError:
        raise RuntimeUnavailable(
            "numpy is not installed: pip install numpy %s" % RUNTIME_REQUIREMENT
        ) from None
    return numpy


class Model(object):
    """A verified bundle with its artifact loaded by the runtime."""

    def __init__(self, folder=None, public_key=None, verify=True):
        self.folder = Path(folder) if folder is not None else HERE
        if verify:
            self.manifest = verify_folder(self.folder, public_key)
        else:
            self.manifest = json.loads((self.folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        self._handle = None

    def predict(self, inputs):
        """inputs: {input name: numpy array} -> {output name: numpy array}."""
        if self._handle is None:
            self._handle = runtime_load(
                self.folder, self.manifest, self.manifest.get("runtime_options") or RUNTIME_OPTIONS
            )
        return runtime_predict(self._handle, inputs)

    def selftest(self):
        """Run the bundled reference input; returns (passed, report lines)."""
        np = _numpy()
        name = self.manifest.get("selftest")
        if not name:
            return False, ["this bundle has no self-test"]
        with np.load(str(self.folder / name), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        inputs = {k[len("input.") :]: v for k, v in arrays.items() if k.startswith("input.")}
        expected = {k[len("expected.") :]: v for k, v in arrays.items() if k.startswith("expected.")}
        if not expected:
            return False, ["selftest.npz holds no expected.<name> arrays"]
        atol = float(arrays["atol"]) if "atol" in arrays else 1e-5
        rtol = float(arrays["rtol"]) if "rtol" in arrays else 1e-4
        min_cosine = float(arrays["min_cosine"]) if "min_cosine" in arrays else None
        outputs = self.predict(inputs)
        problems, report = compare_outputs(outputs, expected, atol, rtol, min_cosine)
        return not problems, report + problems


def load(folder=None, public_key=None, verify=True):
    """Verify the bundle (checksums; signature too when public_key is given) and return a Model."""
    return Model(folder, public_key, verify)


def predict(inputs, folder=None):
    """One-off prediction with the bundle next to this file."""
    return load(folder).predict(inputs)
