"""Deterministic .npz files: numpy's savez stamps the current time into the zip entries, which would
make self-test files, and so bundles, differ between two otherwise identical builds."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def save_npz(path: Path, arrays: dict) -> None:
    import numpy as np

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue())
