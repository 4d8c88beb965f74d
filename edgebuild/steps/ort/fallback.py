"""Accuracy fallback for int8: when no searched candidate passes the output gates, keep in float the
nodes around the activations whose quantization loses the most, a few at a time, until the gates
pass or the budget is spent (the idea of NNCF's quantize_with_accuracy_control, written here).

Ranking: the failing candidate's QuantizeLinear inputs and DequantizeLinear outputs are exposed as
extra outputs and run on a few calibration samples; each quantized activation that feeds a failing
output gets the quantizer's own rounding error, per channel (mean over channels of |dq - q|^2 /
power, with q first clamped to the quantized range: the quantizer folds a Relu or Clip into that
range, so the Q input of a Relu's output is the value before the Relu). Per channel, because the usual culprit is an activation whose range one large channel sets: its
overall error looks small while every other channel is crushed to a step or two. A tensor stays
float only when its producer and every consumer are excluded (onnxruntime's QDQ quantizer puts a
Q/DQ pair on a tensor when any quantized node touches it), so one ranked tensor excludes that group
of nodes. Each round re-ranks on the new candidate (what was hidden behind the worst tensor shows
next), adds up to 1, 2, then 4 causes, and is checked and timed against fp32 like every other
candidate. Weights are ranked on the same scale (per output channel, dequantized against the float
weights, no run needed): onnxruntime raises a channel's weight scale, sometimes thousands of times,
so that the int32 bias fits, and that channel's weights round to zero; such a node alone goes
float.
"""

from __future__ import annotations

import math
from pathlib import Path

ROUNDS = 3
RANK_SAMPLES = 4  # calibration samples the ranking runs on
MAX_SHARE = 0.2  # at most this share of the quantizable nodes goes back to float
OUTPUT_BYTES_PER_RUN = 512 * 1024**2  # exposed tensors fetched per run (big models run in several passes)
Q_SUFFIX = "_QuantizeLinear_Input"  # onnxruntime's name for a graph output's float value before its Q


def failing_outputs(figures: dict, gates: dict) -> list[str]:
    """Outputs that miss a per-output gate, worst first; every output when the miss is not per
    output (accuracy against labels)."""
    from edgebuild.metrics import OUTPUT_RULES, _gate_limit

    outputs = figures.get("outputs") or {}
    bad = []
    for name, fig in outputs.items():
        for gate, figure, op in OUTPUT_RULES:
            limit = _gate_limit(gates, gate)
            value = fig.get(figure)
            if limit is not None and value is not None and (value < limit if op == ">=" else value > limit):
                bad.append(name)
                break
        if fig.get("non_finite_samples") and name not in bad:
            bad.append(name)
    bad.sort(key=lambda n: outputs[n].get("cosine_mean", 0.0))
    return bad or sorted(outputs)


def graph_maps(model) -> tuple[dict, dict]:
    """tensor -> producing node name, tensor -> consuming node names (main graph)."""
    producer, consumers = {}, {}
    for node in model.graph.node:
        for t in node.output:
            producer[t] = node.name
        for t in node.input:
            if t:
                consumers.setdefault(t, []).append(node.name)
    return producer, consumers


def ancestors(model, outputs: list[str]) -> set[str]:
    """Tensors from which any of `outputs` is reachable (the outputs included)."""
    by_output = {t: n for n in model.graph.node for t in n.output}
    seen, todo = set(), list(outputs)
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        node = by_output.get(t)
        if node is not None:
            todo.extend(i for i in node.input if i)
    return seen


def quantized_pairs(qdq_model) -> dict[str, tuple[str, str, float, float]]:
    """Float tensor name (as in the prepared model) -> (QuantizeLinear input, DequantizeLinear
    output, lowest and highest representable value) in the QDQ model, for activations (weights are
    stored quantized, with no Q node)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in qdq_model.graph.initializer}
    dq_of = {n.input[0]: n.output[0] for n in qdq_model.graph.node if n.op_type == "DequantizeLinear"}
    pairs = {}
    for node in qdq_model.graph.node:
        if (
            node.op_type == "QuantizeLinear"
            and node.output[0] in dq_of
            and node.input[1] in inits
            and len(node.input) > 2
            and node.input[2] in inits
        ):
            pre = node.input[0]
            name = pre[: -len(Q_SUFFIX)] if pre.endswith(Q_SUFFIX) else pre
            scale = float(numpy_helper.to_array(inits[node.input[1]]).ravel()[0])
            zero = numpy_helper.to_array(inits[node.input[2]])
            low, high = (0, 255) if zero.dtype.kind == "u" else (-128, 127)
            zp = float(zero.ravel()[0])
            pairs.setdefault(name, (pre, dq_of[node.output[0]], (low - zp) * scale, (high - zp) * scale))
    return pairs


def channel_error(pre, post, low: float = -math.inf, high: float = math.inf) -> float:
    """Mean over channels (axis 1) of the rounding noise power over the channel's power (`pre`
    clamped to [low, high] first); a channel's power is floored at 1e-3 of the median channel's, so
    dead channels count as clean."""
    import numpy as np

    pre, post = np.clip(np.asarray(pre, np.float64), low, high), np.asarray(post, np.float64)
    if pre.ndim >= 2:
        axes = tuple(i for i in range(pre.ndim) if i != 1)
        power, noise = (pre**2).mean(axis=axes), ((post - pre) ** 2).mean(axis=axes)
    else:
        power, noise = np.atleast_1d((pre**2).mean()), np.atleast_1d(((post - pre) ** 2).mean())
    floor = max(1e-3 * float(np.median(power)), 1e-30)
    return float(np.mean(noise / np.maximum(power, floor)))


def rank_tensors(
    qdq_path: Path, prepared_model, failing: list[str], feeds: list[dict], threads: int, work: Path
) -> list[tuple[str, float]]:
    """(float tensor name, per-channel quantization error) for the quantized activations that feed a
    failing output, worst first (ties by name, so the order is deterministic)."""
    import onnx

    from edgebuild.steps.ort.runtime import session

    qdq = onnx.load(str(qdq_path))
    pairs = quantized_pairs(qdq)
    wanted = ancestors(prepared_model, failing)
    pairs = {t: p for t, p in pairs.items() if t in wanted}
    if not pairs:
        return []
    sizes = tensor_bytes(prepared_model)
    existing = {o.name for o in qdq.graph.output}
    errors: dict[str, list[float]] = {}
    for chunk_no, chunk in enumerate(chunks(sorted(pairs), sizes)):
        names = [n for t in chunk for n in pairs[t][:2]]
        probe = onnx.load(str(qdq_path))
        probe.graph.output.extend(
            onnx.helper.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in existing
        )
        path = work / f"fallback-probe-{chunk_no}.onnx"
        onnx.save(probe, str(path))
        sess = session(path, threads, what="the int8 candidate with its quantized activations exposed")
        out_names = [o.name for o in sess.get_outputs()]
        for feed in feeds:
            values = dict(zip(out_names, sess.run(out_names, feed)))
            for t in chunk:
                pre, post, low, high = pairs[t]
                errors.setdefault(t, []).append(channel_error(values[pre], values[post], low, high))
        del sess
        path.unlink(missing_ok=True)
    ranked = [(t, sum(e) / len(e)) for t, e in errors.items()]
    ranked.sort(key=lambda te: (-te[1], te[0]))
    return ranked


WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1, "MatMul": 1}  # the output-channel axis of the weight


def weight_errors(qdq_model, prepared_model, nodes: set[str]) -> list[tuple[str, float]]:
    """(node name, per-output-channel rounding error of its dequantized weights) for the weighted
    nodes in `nodes` whose weights the candidate quantized."""
    import numpy as np
    from onnx import numpy_helper

    inits = {i.name: i for i in qdq_model.graph.initializer}
    float_inits = {i.name: i for i in prepared_model.graph.initializer}
    float_nodes = {n.name: n for n in prepared_model.graph.node}
    dq_by_output = {n.output[0]: n for n in qdq_model.graph.node if n.op_type == "DequantizeLinear"}
    found = []
    for node in qdq_model.graph.node:
        dq = dq_by_output.get(node.input[1]) if len(node.input) > 1 else None
        original = float_nodes.get(node.name)
        if (
            node.name not in nodes
            or dq is None
            or original is None
            or len(original.input) < 2
            or original.input[1] not in float_inits
            or not all(i in inits for i in dq.input[:3])
        ):
            continue
        q, scale, zero = (numpy_helper.to_array(inits[i]).astype(np.float64) for i in dq.input[:3])
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        weights = numpy_helper.to_array(float_inits[original.input[1]]).astype(np.float64)
        out_axis = WEIGHT_AXIS.get(node.op_type)
        if node.op_type == "Gemm":
            out_axis = 0 if any(a.name == "transB" and a.i for a in node.attribute) else 1
        if out_axis is None or weights.shape != q.shape:
            continue
        moved = np.moveaxis(weights, out_axis, 1) if weights.ndim > 1 else weights
        found.append(
            (
                node.name,
                channel_error(
                    moved,
                    np.moveaxis((q - zero) * scale, out_axis, 1) if weights.ndim > 1 else (q - zero) * scale,
                ),
            )
        )
    return found


def tensor_bytes(model) -> dict[str, int]:
    """Float activation sizes from shape inference (unknown dimensions count as 1)."""
    sizes = {}
    for value in list(model.graph.value_info) + list(model.graph.output):
        count = 1
        for dim in value.type.tensor_type.shape.dim:
            count *= dim.dim_value if dim.dim_value > 0 else 1
        sizes[value.name] = 4 * count
    return sizes


def chunks(tensors: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """Groups whose exposed tensors (two per activation) stay within OUTPUT_BYTES_PER_RUN."""
    groups, current, used = [], [], 0
    for t in tensors:
        size = 2 * sizes.get(t, 0)
        if current and used + size > OUTPUT_BYTES_PER_RUN:
            groups.append(current)
            current, used = [], 0
        current.append(t)
        used += size
    return groups + ([current] if current else [])


def quantizable_nodes(model, op_types) -> list[str]:
    return [n.name for n in model.graph.node if n.op_type in op_types]


def group_for(tensor: str, producer: dict, consumers: dict, eligible: set[str]) -> list[str]:
    """The quantizable nodes that must all be float for `tensor` to stay float."""
    nodes = [producer[tensor]] if tensor in producer else []
    nodes += consumers.get(tensor, [])
    return sorted({n for n in nodes if n in eligible})


def budget(quantizable: int) -> int:
    return max(1, math.floor(MAX_SHARE * quantizable))


def fallback(
    start,
    prepared: Path,
    bench,
    build,
    measure,
    failing_of,
    reader_factory,
    op_types,
    max_ratio: float | None,
    work: Path,
    log,
):
    """Rounds of excluding nodes from the best-agreeing failing candidate `start`. build(options)
    makes a candidate, measure([cands]) checks and times it, failing_of(cand) names its failing
    outputs. Returns (the first candidate that passes the gates or None, the record of the rounds)."""
    import onnx

    from edgebuild.steps.base import StepFailed

    model = onnx.load(str(prepared), load_external_data=False)
    eligible = set(quantizable_nodes(model, op_types)) - set(start.options.exclude_nodes)
    cap = budget(len(eligible))
    producer, consumers = graph_maps(model)
    reader = reader_factory(RANK_SAMPLES)
    feeds = [f for f in iter(reader.get_next, None)][:RANK_SAMPLES]
    record = {
        "budget_nodes": cap,
        "quantizable_nodes": len(eligible),
        "rank_samples": len(feeds),
        "rounds": [],
    }
    current, excluded = start, list(start.options.exclude_nodes)
    for round_no in range(ROUNDS):
        failing = failing_of(current)
        try:
            ranked = rank_tensors(current.path, model, failing, feeds, bench.threads, work)
        except StepFailed as exc:
            record["result"] = f"ranking failed: {exc}"
            return None, record
        wanted = ancestors(model, failing)
        feeding = {n.name for n in model.graph.node if any(o in wanted for o in n.output)}
        causes = [(error, "tensor", t, group_for(t, producer, consumers, eligible)) for t, error in ranked]
        causes += [
            (error, "weights", n, [n])
            for n, error in weight_errors(
                onnx.load(str(current.path)), model, (eligible & feeding) - set(excluded)
            )
        ]
        causes.sort(key=lambda c: (-c[0], c[1], c[2]))
        added, chosen = [], []
        for error, kind, name, group in causes:
            group = [n for n in group if n not in excluded + added]
            if not group:
                continue
            if len(excluded) + len(added) + len(group) > cap:
                continue  # does not fit the budget: the next worst one may
            added += group
            chosen.append({kind: name, "error": round(error, 6), "nodes": group})
            if len(chosen) >= 2**round_no:
                break
        if not added:
            worst = next(
                (f"{kind} '{name}'" for _, kind, name, group in causes if set(group) - set(excluded)), None
            )
            record["result"] = (
                f"budget spent: keeping the {worst} in float needs more node(s) than the "
                f"{cap - len(excluded)} left of the budget ({cap} of {len(eligible)} quantizable "
                f"nodes)"
                if worst
                else "nothing quantized feeds the failing outputs"
            )
            return None, record
        excluded += added
        cand = build(current.options.but(exclude_nodes=tuple(excluded)))
        measure([cand])
        entry = {
            "round": round_no + 1,
            "failing_outputs": failing,
            "causes": chosen,
            "excluded_nodes": list(excluded),
            "candidate": cand.record(),
        }
        record["rounds"].append(entry)
        log.info("int8 accuracy fallback round %d: %d node(s) in float", round_no + 1, len(excluded))
        if cand.error:
            record["result"] = f"round {round_no + 1} failed to build: {cand.error}"
            return None, record
        if cand.passes:
            slow = max_ratio is not None and cand.ratio is not None and cand.ratio > max_ratio
            record["result"] = f"passes the gates with {len(excluded)} node(s) in float" + (
                " but is slower than max_latency_ratio allows" if slow else ""
            )
            return cand, record
        current = cand  # rank the next round on this model: what the excluded tensors hid shows now
    record["result"] = f"still misses the gates after {ROUNDS} rounds ({len(excluded)} node(s) in float)"
    return None, record
