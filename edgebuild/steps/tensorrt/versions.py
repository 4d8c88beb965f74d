"""TensorRT versions: which ones this recipe can drive, and whether an installed one is one the
device runs. A device profile lists versions as prefixes ("10.3" = any 10.3.x, "10" = any 10.x),
because JetPack pins a minor release while data-centre GPUs take any release of a major line."""

from __future__ import annotations

# 8.5 is the oldest API with named I/O tensors (execute_async_v3), which builder and loader rely on;
# optimization level, hardware and version compatibility arrived in 8.6.
OLDEST_SUPPORTED = (8, 5)
FEATURES_SINCE = {
    "optimization_level": (8, 6),
    "hardware_compatibility": (8, 6),
    "version_compatible": (8, 6),
}
# 11.x builds strongly typed networks only: precision comes from the ONNX graph, not builder flags.
STRONGLY_TYPED_SINCE = (11, 0)


def parse(version: str) -> tuple[int, ...]:
    parts = []
    for part in str(version).split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def matches(installed: str, entry: str) -> bool:
    """True when the installed version (e.g. "10.3.0.30") is within a profile entry ("10.3")."""
    want = parse(entry)
    return bool(want) and parse(installed)[: len(want)] == want


def lowest(entries: list[str]) -> tuple[int, ...]:
    return min((parse(e) for e in entries), default=())
