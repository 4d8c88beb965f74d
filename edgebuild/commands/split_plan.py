"""`edgebuild split-plan TARGET [--json] [--all] [--out DIR [--link NAME]]`: where to cut a target
with a `split` table between device and server, without building anything. With --out, both
halves of the chosen cut are written and server(device(x)) is checked against the full model."""

from __future__ import annotations

import json
import sys

import click

from edgebuild import cli_options as opt
from edgebuild.errors import BuildFailed, ConfigError, StepFailed
from edgebuild.evaldata import read_npz
from edgebuild.project import did_you_mean, load_project
from edgebuild.targets import resolve_all


def run(args) -> int:
    from edgebuild.split.target_plan import plan_target

    project = load_project(args.project)
    resolved = resolve_all(project, [args.target])[0]
    result = plan_target(project, resolved)
    plan = result.plan
    doc = {"ok": True, "target": args.target, "model": resolved.model.name, **plan.to_json()}
    if args.out:
        doc["extracted"] = _extract(project, resolved, args, result)
        doc["ok"] = doc["extracted"]["passed"]
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        print(plan.table(None if args.all else 15))
        if args.out:
            ex = doc["extracted"]
            print(
                f"wrote {', '.join(ex['files'].values())} (cut for {ex['link']}: {ex['kind']}); build, verify "
                f"and bundle both halves with: edgebuild all -C {args.out}"
            )
            for out, m in ex["composition"].items():
                print(
                    f"server(device(x)) vs model, output {out}: {m['samples']} samples ({result.data}), "
                    f"cosine min {m['cosine_min']:.6f}, max abs error {m['max_abs_error']:.3g}"
                    + (f", top-1 agreement {m['top1_agreement']:.3f}" if "top1_agreement" in m else "")
                    + (
                        f", accuracy {m['accuracy']:.3f} (model {m['accuracy_source']:.3f})"
                        if "accuracy" in m
                        else ""
                    )
                    + f" -> {'ok' if ex['passed'] else 'FAILED'} (gates: cosine >= {ex['gate_min_cosine']:g}"
                    + (
                        f", accuracy drop <= {ex['gate_max_accuracy_drop']:g}"
                        if "accuracy" in m and ex["gate_max_accuracy_drop"] is not None
                        else ""
                    )
                    + ")"
                )
            for role, t in ex["measured_here"].items():
                print(
                    f"{role} half run here: {t['measured_ms']:.3f} ms measured (median), {t['predicted_ms']:.3f} ms "
                    f"predicted by this host's profile ({100.0 * (t['error'] or 0):+.1f}%)"
                )
    if args.out and not doc["ok"]:
        raise BuildFailed(f"split halves of {args.target} do not reproduce the model (see above)")
    return 0


def _time_halves(plan, cut, halves, samples, host_profile, config) -> dict:
    """Each half run alone here (median wall time) against what this host's profile predicts for it."""
    from edgebuild.split import wire
    from edgebuild.split.extract import SplitRunner
    from edgebuild.split.profiler import time_model

    host = host_profile["nodes"]
    feeds = {n: samples[n][: plan.graph.tensors[n].shape[0]] for n in plan.graph.inputs}
    runner = SplitRunner(halves)
    frame, _ = runner.device_part(feeds)
    out = {}
    for role, half, data, nodes in (
        ("device", halves.device, feeds, cut.device_nodes),
        (
            "server",
            halves.server,
            wire.decode(frame) if frame else {},
            set(plan.graph.names) - cut.device_nodes,
        ),
    ):
        if half is None:
            continue
        measured = time_model(
            half.SerializeToString(), data, runs=config.profile_runs, threads=config.threads
        )
        predicted = sum(host.get(n, 0.0) for n in nodes)
        out[role] = {
            "predicted_ms": predicted,
            "measured_ms": measured,
            "error": (predicted - measured) / measured if measured > 0 else None,
        }
    return out


def _extract(project, resolved, args, result) -> dict:
    from pathlib import Path

    from edgebuild.split.emit import write_project
    from edgebuild.split.extract import check_composition, extract_halves, save_halves

    plan, config = result.plan, project.targets[args.target].split
    links = {l.name: l for l in plan.links}
    link = args.link or plan.links[0].name
    if link not in links:
        raise ConfigError(f"--link: no link '{link}'{did_you_mean(link, links)}; links: {', '.join(links)}")
    cut = plan.chosen[link]
    halves = extract_halves(plan.graph, cut)
    out = Path(args.out)
    files = {role: str(p) for role, p in save_halves(halves, out).items()}
    samples = {
        n: v[: max(args.samples, 1) * plan.graph.tensors[n].shape[0]]
        for n, v in result.samples.items()
        if n in plan.graph.tensors
    }
    labels = result.samples.get("labels")
    composition = check_composition(
        plan.graph,
        halves,
        samples,
        plan.intermediate,
        labels[: max(args.samples, 1)] if labels is not None else None,
    )
    max_drop = resolved.params.get("max_accuracy_drop")  # the target's own accuracy gate, where it has one
    passed = all(
        m["cosine_min"] >= config.cosine_gate
        and (not isinstance(max_drop, (int, float)) or m.get("accuracy_drop", 0.0) <= max_drop)
        for m in composition.values()
    )
    doc = {
        "link": link,
        "kind": cut.kind,
        "sent": cut.tensors,
        "files": files,
        "composition": composition,
        "gate_min_cosine": config.cosine_gate,
        "passed": passed,
        "data": result.data,
        "gate_max_accuracy_drop": max_drop if isinstance(max_drop, (int, float)) else None,
        "measured_here": _time_halves(plan, cut, halves, samples, result.host_profile, config),
    }
    full = out / "full.onnx"  # the model as planned (fixed shapes, named nodes): profile it on the device
    full.write_bytes(plan.graph.model.SerializeToString())
    files["full"] = str(full)
    data = {}
    for role in ("calibration", "evaluation"):
        path = getattr(resolved.model, role)
        if path is not None:
            try:
                arrays = read_npz(path, f"{role} data {path.name}")
            except StepFailed as exc:
                raise ConfigError(str(exc)) from None
            data[role] = {k: v for k, v in arrays.items() if k in plan.graph.tensors or k == "labels"}
    if not data:
        data["evaluation"] = {n: v for n, v in result.samples.items() if n in plan.graph.tensors}
    cut_text = (
        "device-only"
        if cut.kind == "device-only"
        else ("server-only" if cut.kind == "server-only" else ", ".join(cut.tensors))
    )
    files["project"] = str(write_project(out, project, resolved, plan.graph, halves, data, cut_text))
    plan_file = out / "plan.json"
    plan_file.write_text(
        json.dumps(
            {
                "link": link,
                "cut": cut.tensors,
                "sent_as": halves.sent,
                "device_outputs": halves.device_outputs,
                "intermediate": plan.intermediate,
                **plan.to_json(),
            },
            indent=1,
        )
    )
    files["plan"] = str(plan_file)
    print(f"split-plan: wrote halves for link {link} to {out}", file=sys.stderr)
    return doc


@click.command("split-plan")
@click.argument("target", metavar="TARGET", shell_complete=opt.complete_targets)
@click.option("--all", is_flag=True, help="show every candidate cut, not the best 15")
@click.option(
    "--out",
    metavar="DIR",
    help="also write both halves of the chosen cut, plan.json, and check that "
    "server(device(x)) equals the model",
)
@click.option(
    "--link", metavar="NAME", help="with --out: the link whose chosen cut to write (default: the first)"
)
@click.option(
    "--samples",
    type=int,
    default=32,
    metavar="N",
    help="with --out: samples of the evaluation data to check (default 32)",
)
@opt.project
@opt.json_summary
@opt.verbose
def command(**params) -> int:
    return opt.call(run, params)
