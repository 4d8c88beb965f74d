"""Which NVIDIA GPUs this host has, through the CUDA driver library (libcuda, present wherever the
NVIDIA driver is, Jetson included) with ctypes, so no CUDA Python package is needed."""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

_ATTR_CC_MAJOR, _ATTR_CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    compute_capability: str  # "8.7"


def _driver():
    for name in ("libcuda.so.1", ctypes.util.find_library("cuda"), "nvcuda.dll"):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def gpus() -> list[Gpu]:
    """Every GPU the driver reports; empty when there is no driver or no device."""
    cuda = _driver()
    if cuda is None or cuda.cuInit(0) != 0:
        return []
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    found = []
    for index in range(count.value):
        device, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        if (
            cuda.cuDeviceGet(ctypes.byref(device), index) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(major), _ATTR_CC_MAJOR, device) != 0
            or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _ATTR_CC_MINOR, device) != 0
        ):
            continue
        cuda.cuDeviceGetName(name, len(name), device)
        found.append(Gpu(index, name.value.decode(errors="replace"), f"{major.value}.{minor.value}"))
    return found
