"""A node described as flat `key=value` features, the vocabulary of measured coverage rules.

A rule in a measured table (e.g. tflite-onnx2tf-measured.tsv) says "op Mod with in0.dtype=int64
fails"; the same features are computed when the table is derived from conversion results and when
a model is checked, so a rule matches exactly the nodes it was measured on.

    in<i>.dtype / .family / .rank / .const   each input (rank "?" unknown; "absent" optional input)
    out<i>.dtype / .family / .rank           each output
    inputs / outputs                         how many are present
    in.ranks_differ                          "yes" when tensor inputs have different ranks
    has.<dtype>, has.<family>                "yes" when any input or output has that element type
    attr.<name>                              scalar attributes, and short lists, as text
"""

from __future__ import annotations

from .graph_walk import NodeInfo, TensorInfo

MAX_ATTR_TEXT = 40


def _kind(t: TensorInfo) -> str:
    if t.dtype:
        return t.dtype
    if not t.type:
        return "?"
    return t.type.split("(")[0]  # seq / optional / map / sparse_tensor


def _family(kind: str) -> str:
    """float / int / uint / bool / string / complex, or the container kind: rules over families
    reach dtypes the measurements did not include (a uint16 rule learned from uint8 and uint32)."""
    for prefix in ("float", "uint", "int", "bool", "string", "complex"):
        if kind.startswith(prefix):
            return prefix
    return kind


def _text(value) -> str | None:
    if isinstance(value, (bool, int, float, str)):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
        text = ",".join(str(v) for v in value)
        return text if len(text) <= MAX_ATTR_TEXT else None
    return None


def features(node: NodeInfo) -> dict[str, str]:
    f: dict[str, str] = {}
    for role, tensors in (("in", node.inputs), ("out", node.outputs)):
        count = 0
        for i, t in enumerate(tensors):
            if t is None:
                f[f"{role}{i}"] = "absent"
                continue
            count += 1
            kind = _kind(t)
            f[f"{role}{i}.dtype"] = kind
            f[f"{role}{i}.family"] = _family(kind)
            f[f"{role}{i}.rank"] = str(len(t.shape)) if t.shape is not None else "?"
            if role == "in":
                f[f"{role}{i}.const"] = "yes" if t.constant else "no"
            f[f"has.{kind}"] = "yes"
            f[f"has.{_family(kind)}"] = "yes"
        f["inputs" if role == "in" else "outputs"] = str(count)
    ranks = {len(t.shape) for t in node.inputs if t is not None and t.shape is not None and t.dtype}
    if len(ranks) > 1:
        f["in.ranks_differ"] = "yes"  # broadcasting across ranks (layout changes break it)
    for name, value in node.attrs.items():
        text = _text(value)
        if text is not None:
            f[f"attr.{name}"] = text
    return f


def parse_condition(text: str) -> list[tuple[str, str]]:
    """ "in0.dtype=int64 & attr.mode=cubic" -> [(key, value), ...]; "*" -> [] (always true)."""
    if text.strip() in ("", "*"):
        return []
    pairs = []
    for part in text.split("&"):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ValueError(f"condition '{part.strip()}' is not key=value")
        pairs.append((key.strip(), value.strip()))
    return pairs


def matches(feats: dict[str, str], condition: list[tuple[str, str]]) -> bool:
    return all(feats.get(k) == v for k, v in condition)
