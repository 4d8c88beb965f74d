"""A minimal `torchvision` for onnx2torch when the real one is absent.

onnx2torch imports torchvision at import time, only for its NonMaxSuppression and RoiAlign
converters. Installing torchvision next to the pinned CPU torch either replaces torch with a CUDA
build or gives a torchvision whose import fails, so the Core ML toolchain leaves it out and this
stand-in is put in `sys.modules` while onnx2torch is imported, and taken out again afterwards
(onnx2torch keeps its own reference), so nothing else in the process mistakes it for torchvision.
With it, models containing NonMaxSuppression or RoiAlign cannot convert: their converters call
these functions, which fail with a message naming the op.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types

# ONNX ops whose onnx2torch converters need the real torchvision.
OPS_NEEDING_TORCHVISION = ("NonMaxSuppression", "RoiAlign")


def _unavailable(op_name: str):
    def call(*args, **kwargs):
        raise NotImplementedError(
            f"ONNX op {op_name} needs torchvision, which the Core ML toolchain does not install"
        )

    return call


_bound = False  # onnx2torch was imported against the stand-in


def is_standin_active() -> bool:
    module = sys.modules.get("torchvision")
    return _bound or (module is not None and getattr(module, "__edgebuild_standin__", False))


def install_if_missing() -> bool:
    """Put the stand-in in sys.modules unless a working torchvision imports; True if installed."""
    global _bound
    if "torchvision" in sys.modules:
        return is_standin_active()
    if importlib.util.find_spec("torchvision") is not None:
        try:
            import torchvision  # noqa: F401

            return False
        except Exception:  # a torchvision built for another torch fails at import
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
    package = types.ModuleType("torchvision")
    package.__doc__ = "edgebuild stand-in: NonMaxSuppression and RoiAlign cannot convert"
    package.__edgebuild_standin__ = True
    ops = types.ModuleType("torchvision.ops")
    ops.nms = _unavailable("NonMaxSuppression")
    ops.box_convert = _unavailable("NonMaxSuppression")
    ops.roi_align = _unavailable("RoiAlign")
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    ops.__spec__ = importlib.machinery.ModuleSpec("torchvision.ops", None)
    package.ops = ops
    sys.modules["torchvision"] = package
    sys.modules["torchvision.ops"] = ops
    _bound = True
    return True


def remove() -> None:
    """Take the stand-in out of sys.modules (modules that imported it keep their reference)."""
    if getattr(sys.modules.get("torchvision"), "__edgebuild_standin__", False):
        sys.modules.pop("torchvision.ops", None)
        sys.modules.pop("torchvision", None)
