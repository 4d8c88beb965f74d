"""Train the demo CNN on scikit-learn's 8x8 handwritten digits and export it to ONNX.

Writes models/digits.onnx, data/digits_calibration.npz (representative inputs for int8) and
data/digits_eval.npz (held-out inputs with labels). The committed files were made by this script;
rerun it only to change the demo (needs torch==2.13.0, scikit-learn, onnx).

    python scripts/train_demo_cnn.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SEED = 0


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_data() -> tuple[np.ndarray, ...]:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # NCHW, values in [0, 1]
    y = digits.target.astype(np.int64)
    x_train, x_eval, y_train, y_eval = train_test_split(x, y, test_size=0.3, stratify=y, random_state=SEED)
    return x_train, x_eval, y_train, y_eval


def train(model: nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for epoch in range(30):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()


def main() -> None:
    torch.manual_seed(SEED)
    x_train, x_eval, y_train, y_eval = load_data()
    model = DigitsCNN()
    train(model, x_train, y_train)
    with torch.no_grad():
        acc = (model(torch.from_numpy(x_eval)).argmax(1).numpy() == y_eval).mean()
    print(f"eval accuracy {acc:.4f} on {len(y_eval)} held-out digits")

    (ROOT / "models").mkdir(exist_ok=True)
    (ROOT / "data").mkdir(exist_ok=True)
    torch.onnx.export(
        model,
        (torch.from_numpy(x_eval[:1]),),
        str(ROOT / "models" / "digits.onnx"),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    rng = np.random.default_rng(SEED)
    calib = x_train[rng.choice(len(x_train), 128, replace=False)]
    np.savez_compressed(ROOT / "data" / "digits_calibration.npz", input=calib)
    np.savez_compressed(ROOT / "data" / "digits_eval.npz", input=x_eval, labels=y_eval)


if __name__ == "__main__":
    main()
