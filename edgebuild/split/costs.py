"""Per-node times on each side of the link.

Server: the host profile (measured here with onnxruntime) times `server_speed_factor`.
Device: a measured device profile where it names the node; otherwise the host time times a speed
factor: the split table's `speed_factor`, else the device profile's own ratio to the host on the
nodes both measured, else the recipe device's `speed_factor`, else 1.0. Every device time that is
not measured is labelled an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class NodeCosts:
    device_ms: dict[str, float]
    server_ms: dict[str, float]
    measured_on_device: set[str]  # nodes whose device time comes from a device profile
    basis: str  # one line: where the device times come from

    def device(self, nodes) -> float:
        return sum(self.device_ms[n] for n in nodes)

    def server(self, nodes) -> float:
        return sum(self.server_ms[n] for n in nodes)


def node_costs(
    names: list[str],
    host_ms: dict[str, float],
    device_profile: dict | None = None,
    speed_factor: float | None = None,
    recipe_factor: float | None = None,
    server_factor: float = 1.0,
) -> NodeCosts:
    host = {n: float(host_ms.get(n, 0.0)) for n in names}
    measured = {n: float(v) for n, v in (device_profile or {}).get("nodes", {}).items() if n in host}
    factor, source = 1.0, "assumed as fast as this host (no speed_factor, no device profile)"
    if speed_factor is not None:
        factor, source = speed_factor, f"split.speed_factor {speed_factor:g}"
    elif measured and sum(host[n] for n in measured) > 0:
        factor = sum(measured.values()) / sum(host[n] for n in measured)
        source = f"the device profile's ratio to this host on the {len(measured)} nodes it measured ({factor:.3g}x)"
    elif recipe_factor is not None:
        factor, source = recipe_factor, f"the recipe's device speed_factor {recipe_factor:g}"
    device = {n: measured.get(n, host[n] * factor) for n in names}
    estimated = len(names) - len(measured)
    if not measured:
        basis = f"ESTIMATE: device time = host time x {factor:.3g} ({source})"
    elif estimated:
        basis = (
            f"device profile measured {len(measured)} of {len(names)} nodes; the other {estimated} are an "
            f"ESTIMATE: host time x {factor:.3g} ({source})"
        )
    else:
        basis = "device profile measured every node"
    return NodeCosts(
        device_ms=device,
        server_ms={n: host[n] * server_factor for n in names},
        measured_on_device=set(measured),
        basis=basis,
    )
