"""Where to cut: every candidate partition's predicted latency per link, and the chosen one.

A partition puts a set of nodes on the device, closed under predecessors (a node runs on the
device only if everything it reads was computed there); the cut is the set of tensors that set
sends to the server. Predicted latency for a link = device ms + transfer ms + server ms, with
transfer = bytes*8/uplink + rtt (no transfer and no rtt for device-only).

Candidates shown: every frontier of the model's topological order (the tensors live across each
position, which covers skip connections and branches), device-only, server-only. The chosen cut per
link is the optimum over ALL valid partitions, found as a minimum s-t cut (the DADS construction):
source side = device, each node pays its server time when cut from the source and its device time
when cut from the sink, each tensor pays its transfer once, and infinite edges forbid a device node
that reads a server tensor. The round trip is a constant for every non-trivial partition, so the
best non-trivial one (output producers forced to the server) is compared with device-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebuild.split.config import Link
from edgebuild.split.costs import NodeCosts
from edgebuild.split.mincut import INF, FlowGraph
from edgebuild.split.model_graph import ModelGraph


@dataclass
class Candidate:
    device_nodes: frozenset[str]
    tensors: list[str]
    bytes: int
    device_ms: float
    server_ms: float
    origin: str = "frontier"

    def transfer_ms(self, link: Link) -> float:
        return link.transfer_ms(self.bytes) + link.rtt_ms if self.tensors else 0.0

    def total_ms(self, link: Link) -> float:
        return self.device_ms + self.transfer_ms(link) + self.server_ms

    @property
    def kind(self) -> str:
        if not self.tensors:
            return "device-only"
        return "server-only" if not self.device_nodes else "split"


def evaluate(
    graph: ModelGraph,
    costs: NodeCosts,
    device: set[str] | frozenset[str],
    intermediate: str,
    origin: str = "frontier",
) -> Candidate:
    """The same cost model for every partition (the planner, brute force and the tests use it)."""
    device = frozenset(device)
    if not graph.is_closed(device):
        raise ValueError("not a valid partition: a device node reads a tensor computed on the server")
    tensors = graph.crossing(device)
    nbytes = sum(graph.tensors[t].wire_bytes(intermediate) for t in tensors)
    server = [n for n in graph.names if n not in device]
    return Candidate(device, tensors, nbytes, costs.device(device), costs.server(server), origin)


MAX_FRONTIERS = (
    1000  # candidates listed; a longer model lists every k-th frontier (the choice is exact anyway)
)


def frontier_sets(graph: ModelGraph) -> list[frozenset[str]]:
    """The device sets 'first k nodes of the topological order', k = 0..N."""
    names = graph.names
    return [frozenset(names[:k]) for k in range(len(names) + 1)]


def frontier_candidates(graph: ModelGraph, costs: NodeCosts, intermediate: str) -> list[Candidate]:
    """evaluate() of every frontier (every k-th past MAX_FRONTIERS), in one pass: the live tensors
    and the times are updated node by node instead of recomputed (O(N) instead of O(N^2))."""
    names = graph.names
    step = max(1, -(-len(names) // MAX_FRONTIERS))
    waiting = {t: len(c) for t, c in graph.consumers.items()}  # consumers not yet on the device
    live: dict[str, None] = {t: None for t in graph.inputs if waiting.get(t)}
    device_ms, server_ms = 0.0, costs.server(names)
    out = []
    for k in range(len(names) + 1):
        if k:
            node = graph.node(names[k - 1])
            device_ms += costs.device_ms[node.name]
            server_ms -= costs.server_ms[node.name]
            for t in dict.fromkeys(node.inputs):
                if t in waiting:
                    waiting[t] -= 1
                    if not waiting[t]:
                        live.pop(t, None)
            for t in node.outputs:
                if waiting.get(t):
                    live[t] = None
        if k % step and k != len(names):
            continue
        tensors = list(live) if k < len(names) else []
        nbytes = sum(graph.tensors[t].wire_bytes(intermediate) for t in tensors)
        out.append(
            Candidate(
                frozenset(names[:k]),
                tensors,
                nbytes,
                device_ms,
                max(server_ms, 0.0) if k < len(names) else 0.0,
            )
        )
    return out


def _optimal_device_set(
    graph: ModelGraph, costs: NodeCosts, link: Link, intermediate: str, keep: set[str], force_split: bool
) -> set[str] | None:
    net = FlowGraph()
    s, t, source_in = ("s",), ("t",), ("in",)
    net.add_edge(s, source_in, INF)  # the data starts on the device
    for node in graph.nodes:
        v = ("n", node.name)
        # v pays its server time when cut from s, its device time when cut from t; both sides share
        # min(server, device) whatever the partition, so only the difference needs an edge
        # (fewer augmenting paths, same minimum)
        server, device = costs.server_ms[node.name], costs.device_ms[node.name]
        if server > device:
            net.add_edge(s, v, server - device)
        elif device > server:
            net.add_edge(v, t, device - server)
        if node.name in keep:
            net.add_edge(s, v, INF)
    for tensor, consumers in graph.consumers.items():
        producer = ("n", graph.producer[tensor]) if tensor in graph.producer else source_in
        x = ("x", tensor)
        net.add_edge(producer, x, link.transfer_ms(graph.tensors[tensor].wire_bytes(intermediate)))
        for c in consumers:
            net.add_edge(x, ("n", c), INF)  # a server consumer makes the transfer paid
            net.add_edge(("n", c), producer, INF)  # a device consumer needs a device producer
    if force_split:
        for out in graph.outputs:
            if out in graph.producer:
                net.add_edge(("n", graph.producer[out]), t, INF)
    value, side = net.min_cut(s, t)
    if value == INF:
        return None
    return {key[1] for key in side if key[0] == "n"}


def best_offload(
    graph: ModelGraph, costs: NodeCosts, link: Link, intermediate: str, keep: set[str] = frozenset()
) -> Candidate | None:
    """The cheapest partition that sends something (a split or server-only); None when
    keep_on_device leaves none."""
    device = _optimal_device_set(graph, costs, link, intermediate, keep, force_split=True)
    return None if device is None else evaluate(graph, costs, device, intermediate, f"min-cut ({link.name})")


def optimal_cut(
    graph: ModelGraph, costs: NodeCosts, link: Link, intermediate: str, keep: set[str] = frozenset()
) -> Candidate:
    """The cheapest partition for `link` over every valid partition (see the module doc)."""
    options = [evaluate(graph, costs, set(graph.names), intermediate, "device-only")]
    offload = best_offload(graph, costs, link, intermediate, keep)
    if offload is not None:
        options.append(offload)
    return min(options, key=lambda c: (c.total_ms(link), c.bytes))


@dataclass
class Plan:
    graph: ModelGraph
    costs: NodeCosts
    links: tuple[Link, ...]
    intermediate: str
    candidates: list[Candidate]
    chosen: dict[str, Candidate]
    notes: list[str] = field(default_factory=list)

    @property
    def device_only(self) -> Candidate:
        return next(c for c in self.candidates if c.kind == "device-only")

    @property
    def server_only(self) -> Candidate | None:
        return next((c for c in self.candidates if c.kind == "server-only"), None)

    def ranked(self, link: Link | None = None) -> list[Candidate]:
        link = link or self.links[0]
        return sorted(self.candidates, key=lambda c: (c.total_ms(link), c.bytes))

    def describe(self, c: Candidate) -> str:
        if c.kind != "split":
            return c.kind
        shown = ", ".join(c.tensors[:2]) + (f" +{len(c.tensors) - 2}" if len(c.tensors) > 2 else "")
        return shown

    def to_json(self) -> dict:
        input_bytes = self.graph.input_bytes
        index = {c.device_nodes: i for i, c in enumerate(self.candidates)}

        order = {n: i for i, n in enumerate(self.graph.names)}

        def row(c: Candidate, nodes: bool = False) -> dict:
            out = {
                "id": index[c.device_nodes],
                "kind": c.kind,
                "origin": c.origin,
                "tensors": c.tensors,
                "bytes": c.bytes,
                "share_of_input": c.bytes / input_bytes if input_bytes else None,
                "device_node_count": len(c.device_nodes),
                "device_ms": c.device_ms,
                "server_ms": c.server_ms,
                "transfer_ms": {l.name: c.transfer_ms(l) for l in self.links},
                "total_ms": {l.name: c.total_ms(l) for l in self.links},
            }
            if nodes:  # only for the chosen cuts: the full lists would make the JSON N^2
                out["device_nodes"] = sorted(c.device_nodes, key=order.__getitem__)
            return out

        return {
            "input_bytes": input_bytes,
            "intermediate": self.intermediate,
            "nodes": len(self.graph.nodes),
            "device_time_basis": self.costs.basis,
            "notes": self.notes,
            "links": [{"name": l.name, "uplink_mbps": l.uplink_mbps, "rtt_ms": l.rtt_ms} for l in self.links],
            "chosen": {name: row(c, nodes=True) for name, c in self.chosen.items()},
            "candidates": [row(c) for c in self.ranked()],
        }

    def table(self, top: int | None = 15) -> str:
        input_bytes = self.graph.input_bytes
        ranked = self.ranked()
        chosen_sets = {c.device_nodes for c in self.chosen.values()}
        shown = (
            ranked
            if top is None
            else [
                c
                for i, c in enumerate(ranked)
                if i < top or c.device_nodes in chosen_sets or c.kind != "split"
            ]
        )
        heads = ["rank", "cut tensors", "bytes", "% input", "dev nodes", "device ms", "server ms"] + [
            f"{l.name} ms" for l in self.links
        ]
        rows = []
        for c in shown:
            totals = [
                f"{c.total_ms(l):.2f}" + ("*" if self.chosen[l.name].device_nodes == c.device_nodes else "")
                for l in self.links
            ]
            rows.append(
                [
                    str(ranked.index(c) + 1),
                    self.describe(c)[:48],
                    f"{c.bytes:,}",
                    f"{100.0 * c.bytes / input_bytes:.1f}" if input_bytes else "-",
                    str(len(c.device_nodes)),
                    f"{c.device_ms:.2f}",
                    f"{c.server_ms:.2f}",
                    *totals,
                ]
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
        lines = [
            f"{len(self.graph.nodes)} nodes, input {input_bytes:,} bytes, intermediate {self.intermediate}; "
            f"ranked by {self.links[0].name}; * = chosen for that link",
            f"device times: {self.costs.basis}",
            *self.notes,
            "links: "
            + ", ".join(f"{l.name} {l.uplink_mbps:g} Mbit/s up, rtt {l.rtt_ms:g} ms" for l in self.links),
            "  ".join(h.ljust(w) for h, w in zip(heads, widths)),
        ]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
        if top is not None and len(shown) < len(ranked):
            lines.append(f"... {len(ranked) - len(shown)} more candidates (--all shows them)")
        lines.append("chosen:")
        for l in self.links:
            c = self.chosen[l.name]
            lines.append(
                f"  {l.name}: {self.describe(c) if c.kind == 'split' else c.kind} "
                f"({c.bytes:,} bytes sent) = {c.device_ms:.2f} device + {c.transfer_ms(l):.2f} transfer + "
                f"{c.server_ms:.2f} server = {c.total_ms(l):.2f} ms; device-only "
                f"{self.device_only.total_ms(l):.2f}, server-only "
                + (f"{self.server_only.total_ms(l):.2f}" if self.server_only else "n/a")
            )
        return "\n".join(lines)


def make_plan(
    graph: ModelGraph,
    costs: NodeCosts,
    links: tuple[Link, ...],
    intermediate: str = "fp32",
    keep_on_device: tuple[str, ...] = (),
) -> Plan:
    unknown = [n for n in keep_on_device if n not in set(graph.names)]
    if unknown:
        raise KeyError(unknown[0])
    keep: set[str] = set()
    for name in keep_on_device:
        keep |= graph.ancestors(name)
    candidates: dict[frozenset, Candidate] = {}
    for candidate in frontier_candidates(graph, costs, intermediate):
        if keep <= candidate.device_nodes:
            candidates.setdefault(candidate.device_nodes, candidate)
    chosen = {}
    for link in links:
        best = optimal_cut(graph, costs, link, intermediate, keep)
        chosen[link.name] = candidates.setdefault(best.device_nodes, best)
    notes = [f"kept on the device: {', '.join(keep_on_device)}"] if keep_on_device else []
    for c in candidates.values():
        if c.kind == "device-only":
            c.origin = "device-only"
    if not any(c.kind == "server-only" for c in candidates.values()):
        notes.append("server-only is not a candidate (keep_on_device)")
    return Plan(graph, costs, tuple(links), intermediate, list(candidates.values()), chosen, notes)
