"""Order-dependent partitioning: which ops stay on an accelerator that cuts the graph once.

The Edge TPU compiler walks the ops in execution order and maps them until the first one it
cannot map; that op and everything after it run on the CPU (facts/tflite-edgetpu.md). This module
knows nothing about any op: it takes per-op verdicts in execution order and applies the cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SUPPORTED = "supported"
RESTRICTION = "restriction violated"
UNSUPPORTED = "unsupported"
FALLBACK = "CPU fallback"


@dataclass
class OpVerdict:
    """What one op's own rules say, before the cut is applied."""

    index: int
    op: str
    ok: bool
    status: str = SUPPORTED  # SUPPORTED, RESTRICTION or UNSUPPORTED
    reason: str = ""
    macs: int = 0
    boundary: bool = False  # a float<->int conversion at the model edge: runs on the CPU without cutting
    name: str = ""


@dataclass
class OpPlacement:
    index: int
    op: str
    on_accelerator: bool
    status: str  # SUPPORTED, RESTRICTION, UNSUPPORTED or FALLBACK
    reason: str
    macs: int
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
            "name": self.name,
            "on_accelerator": self.on_accelerator,
            "status": self.status,
            "reason": self.reason,
            "macs": self.macs,
        }


@dataclass
class Partition:
    """Where every op runs, the first CPU fallback, and the shares kept on the accelerator."""

    placements: list[OpPlacement] = field(default_factory=list)
    first_fallback_index: int | None = None
    first_fallback_op: str | None = None
    first_fallback_reason: str | None = None

    @property
    def total_ops(self) -> int:
        return len(self.placements)

    @property
    def accelerated_ops(self) -> int:
        return sum(p.on_accelerator for p in self.placements)

    @property
    def total_macs(self) -> int:
        return sum(p.macs for p in self.placements)

    @property
    def accelerated_macs(self) -> int:
        return sum(p.macs for p in self.placements if p.on_accelerator)

    @property
    def ops_share(self) -> float:
        return self.accelerated_ops / self.total_ops if self.total_ops else 0.0

    @property
    def macs_share(self) -> float | None:
        return self.accelerated_macs / self.total_macs if self.total_macs else None

    def to_json(self, placements: bool = True) -> dict[str, Any]:
        data = {
            "total_ops": self.total_ops,
            "accelerated_ops": self.accelerated_ops,
            "ops_share": round(self.ops_share, 6),
            "total_macs": self.total_macs,
            "accelerated_macs": self.accelerated_macs,
            "macs_share": None if self.macs_share is None else round(self.macs_share, 6),
            "first_fallback": None
            if self.first_fallback_index is None
            else {
                "index": self.first_fallback_index,
                "op": self.first_fallback_op,
                "reason": self.first_fallback_reason,
            },
        }
        if placements:
            data["placements"] = [p.to_json() for p in self.placements]
        return data


def cut_at_first_failure(verdicts: list[OpVerdict]) -> Partition:
    """Apply the single-cut rule to verdicts given in execution order."""
    part = Partition()
    cut = False
    for v in verdicts:
        if v.boundary:
            part.placements.append(OpPlacement(v.index, v.op, False, FALLBACK, v.reason, v.macs, v.name))
            continue
        if not cut and not v.ok:
            cut = True
            part.first_fallback_index, part.first_fallback_op, part.first_fallback_reason = (
                v.index,
                v.op,
                v.reason,
            )
        if not cut:
            part.placements.append(OpPlacement(v.index, v.op, True, SUPPORTED, "", v.macs, v.name))
        elif not v.ok:
            part.placements.append(OpPlacement(v.index, v.op, False, v.status, v.reason, v.macs, v.name))
        else:
            reason = f"after the first unmapped op ({part.first_fallback_op} #{part.first_fallback_index})"
            part.placements.append(OpPlacement(v.index, v.op, False, FALLBACK, reason, v.macs, v.name))
    return part
