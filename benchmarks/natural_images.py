"""Natural-image inputs for the corpus's vision models: real photographs, not noise.

Quantization calibrated and checked on uniform noise says little about a vision model: its
activations on noise are nothing like those on photographs (a text detector's probability map is
near-degenerate there). No model hub is reachable from here, so the images come from a pinned
PyPI wheel: the sample images that ship inside scikit-image (photographs, micrographs, a scanned
page and a text sign; public domain or CC0 per scikit-image's data README). Each member is pinned
by sha256 and decoded with Pillow; nothing of scikit-image is imported.

Two disjoint pools: even seeds draw from one half of the images, odd seeds from the other, so a
calibration set (one seed) and an evaluation set (the next) never share a photograph. A sample is
a random crop with the model's aspect ratio (30-100% of the image's side), resized to the model's
input and normalized the way the model's own package does (CorpusModel.image: mean/std/scale and
channel order, read from each package's preprocessing code).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

IMAGE_PACKAGE = "scikit-image==0.26.0"
MAX_IMAGE_BYTES = 4 * 1024 * 1024
# member (under skimage/data/) -> sha256. Tiny synthetic test patterns (chessboard, phantom) left out.
IMAGES = {
    "astronaut.png": "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    "brick.png": "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
    "camera.png": "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    "cell.png": "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515",
    "chelsea.png": "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    "clock_motion.png": "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955",
    "coffee.png": "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    "coins.png": "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba",
    "color.png": "7d2df993de2b4fa2a78e04e5df8050f49a9c511aa75e59ab3bd56ac9c98aef7e",
    "grass.png": "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
    "gravel.png": "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
    "hubble_deep_field.jpg": "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
    "ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
    "logo.png": "f2c57fe8af089f08b5ba523d95573c26e62904ac5967f4c8851b27d033690168",
    "moon.png": "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577",
    "motorcycle_left.png": "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179",
    "motorcycle_right.png": "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797",
    "page.png": "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3",
    "retina.jpg": "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6",
    "rocket.jpg": "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
    "text.png": "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1",
}


@dataclass(frozen=True)
class ImagePrep:
    """How a model's package turns 8-bit pixels into its input: (pixel * scale - mean) / std."""

    scale: float = 1 / 255
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    order: str = "rgb"  # rgb | bgr (packages that read with cv2) | gray


UNIT = ImagePrep()  # x / 255
PLUS_MINUS_ONE = ImagePrep(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), order="bgr")
IMAGENET_BGR = ImagePrep(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), order="bgr")


def _pool(seed: int) -> list[str]:
    names = sorted(IMAGES)
    return names[seed % 2 :: 2]


def image_dir(cache: Path) -> Path:
    return cache / "images"


def fetch_images(cache: Path, download_wheel, integrity_error) -> Path:
    """The pinned images under cache/images, extracted from scikit-image's wheel on first use."""
    out = image_dir(cache)
    if all((out / n).exists() for n in IMAGES):
        return out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="wheel-") as tmp:
        wheel = download_wheel(IMAGE_PACKAGE, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for name, digest in IMAGES.items():
                info = zf.getinfo(f"skimage/data/{name}")
                if info.file_size > MAX_IMAGE_BYTES:
                    raise integrity_error(f"{wheel.name}:{name} is {info.file_size} bytes, over the limit")
                data = zf.read(info)
                if hashlib.sha256(data).hexdigest() != digest:
                    raise integrity_error(f"sha256 of {wheel.name}:{name} is not the pinned one")
                fd, part = tempfile.mkstemp(dir=out, suffix=".part")
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(part, out / name)
    return out


def image_layout(shape: list) -> tuple[int, int, int, bool] | None:
    """(channels, height, width, channels_first) for a 4-D image input, else None."""
    if len(shape) != 4:
        return None
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return shape[1], shape[2], shape[3], True
    if shape[3] in (1, 3):
        return shape[3], shape[1], shape[2], False
    return None


def sample(images: Path, shape: list, prep: ImagePrep, n: int, seed: int, scene: str = "photo"):
    """n samples of `shape` ([b, c, h, w] or [b, h, w, c]), stacked on axis 0: photograph crops
    (scene "photo"), or a rendered text scene from text_images.py (pages, text lines, captchas) with
    the same pool of photographs for its figures and backgrounds."""
    import numpy as np

    if scene != "photo":
        import text_images  # imports this module: load it only when a scene is rendered

    channels, height, width, first = image_layout(shape)
    rng = np.random.default_rng(seed)
    pool = [images / name for name in _pool(seed)]
    out = []
    for _ in range(n * shape[0]):
        if scene == "photo":
            img = photo_crop(rng, pool, width, height)
        else:
            img = text_images.render(scene, rng, width, height, pool)
        img = img.convert("L" if channels == 1 or prep.order == "gray" else "RGB")
        pixels = np.asarray(img, dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        if prep.order == "bgr":
            pixels = pixels[..., ::-1]
        count = pixels.shape[-1]
        mean = np.asarray(prep.mean[:count], dtype=np.float32)
        std = np.asarray(prep.std[:count], dtype=np.float32)
        pixels = (pixels * np.float32(prep.scale) - mean) / std
        out.append(pixels.transpose(2, 0, 1) if first else pixels)
    return np.stack(out).astype(np.float32)


def photo_crop(rng, pool: list[Path], width: int, height: int):
    """A crop with the input's aspect ratio, 30-100% of what fits, anywhere in a random image of the
    pool, resized to width x height (RGB)."""
    from PIL import Image

    with Image.open(pool[rng.integers(len(pool))]) as img:
        img = img.convert("RGB")
        fit = min(img.width / width, img.height / height)
        scale = fit * rng.uniform(0.3, 1.0)
        cw, ch = max(1, int(width * scale)), max(1, int(height * scale))
        x0, y0 = int(rng.integers(img.width - cw + 1)), int(rng.integers(img.height - ch + 1))
        return img.crop((x0, y0, x0 + cw, y0 + ch)).resize((width, height), Image.BILINEAR)
