"""Derive recipes/coverage/tflite-onnx2tf-measured.tsv from measured conversions.

Input: the per-test results of `benchmarks/coverage_honesty.py --tflite-python ...` (one JSON line
per ONNX node test: did edgebuild's tflite.convert + LiteRT reproduce the reference outputs?).
Output: per op, an ordered list of rules `when -> converts | fails`, learned as a decision list
over the node features of edgebuild.coverage.node_features (dtypes, ranks, constness, attributes):

- every node of a test that works is a positive example (it converted in that context);
- a failing test with one node is a negative example for that node;
- a failing test with several nodes blames its op when exactly one of its ops has no other
  example; otherwise it teaches nothing (the blame cannot be placed);
- a failing test the route refuses for its inputs or outputs (tflite.graph_problems: dynamic or
  scalar inputs, non-tensor I/O) teaches nothing about its ops.

Per op, the learner repeatedly takes the single `feature=value` condition that covers the most
remaining examples, all of one verdict, emits it as a rule and removes what it covers; the rest get
their majority verdict (`*`). Rules are facts about onnx2tf's behaviour measured here, not
code from it; rerun after changing the onnx2tf version:

    python scripts/derive_tflite_rules.py RESULTS.jsonl [RESULTS2.jsonl ...] --node-dir DIR
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "recipes" / "coverage" / "tflite-onnx2tf-measured.tsv"
FEATURE_ORDER = ("has.", "in", "out", "attr.", "inputs", "outputs")  # tie-break: types before attributes


@dataclass
class Example:
    op: str
    feats: dict
    works: bool
    why: str


def examples_from_results(results: dict[str, tuple[bool, str]], node_dir: Path) -> list[Example]:
    from edgebuild.coverage.graph_walk import walk_model
    from edgebuild.coverage.node_features import features
    from edgebuild.coverage.tflite import graph_problems

    examples, pending = [], []
    for test, (works, why) in sorted(results.items()):
        try:
            graph = walk_model(node_dir / test / "model.onnx")
        except Exception:  # unreadable test model: nothing to learn from
            continue
        if not works and graph_problems(graph):
            continue  # refused for its inputs/outputs: says nothing about its ops
        nodes = [n for n in graph.nodes if n.op_type != "Constant"]
        if works or len(nodes) == 1:
            examples += [Example(n.op_type, features(n), works, why) for n in nodes]
        elif nodes:
            pending.append((nodes, why))
    known = {e.op for e in examples}
    for nodes, why in pending:  # blame a failing multi-node test on its one unmeasured op
        unknown = [n for n in nodes if n.op_type not in known]
        if len({n.op_type for n in unknown}) == 1:
            examples += [Example(n.op_type, features(n), False, why) for n in unknown]
    return examples


def _condition_rank(key: str) -> int:
    return next((i for i, prefix in enumerate(FEATURE_ORDER) if key.startswith(prefix)), len(FEATURE_ORDER))


def learn_op(examples: list[Example]) -> list[tuple[str, bool, list[Example]]]:
    """Decision list for one op: [(condition text, verdict, examples it covers)], ending with '*'.

    Each step takes the single `feature=value` condition that covers the most remaining examples,
    all of one verdict (types before attributes on ties), and removes what it covers; whatever no
    clean condition separates gets its majority verdict (ties: converts) under '*'."""
    rules, remaining = [], list(examples)
    while len({e.works for e in remaining}) > 1:
        best = None
        candidates = sorted(
            {(k, v) for e in remaining for k, v in e.feats.items()},
            key=lambda kv: (_condition_rank(kv[0]), kv),
        )
        for key, value in candidates:
            covered = [e for e in remaining if e.feats.get(key) == value]
            if (
                len(covered) < len(remaining)
                and len({e.works for e in covered}) == 1
                and (best is None or len(covered) > len(best[2]))
            ):
                best = (f"{key}={value}", covered[0].works, covered)
        if best is None:
            break
        rules.append(best)
        remaining = [e for e in remaining if not any(e is c for c in best[2])]
    if remaining:
        rules.append(("*", sum(e.works for e in remaining) * 2 >= len(remaining), remaining))
    return rules


def _scoped(when: str, covered: list[Example]) -> str:
    """A rule holds only where it was measured: it also requires the input constness all its
    examples share (node tests pass even Conv weights as graph inputs, so their verdicts say
    nothing about a model with constant weights), and the closing '*' rule the dtype families."""
    suffixes = (".const", ".family") if when == "*" else (".const",)
    shared = [
        f"{k}={v}"
        for k, v in sorted(covered[0].feats.items())
        if k.startswith("in") and k.endswith(suffixes) and all(e.feats.get(k) == v for e in covered)
    ]
    parts = ([] if when == "*" else [when]) + [c for c in shared if c != when]
    return " & ".join(parts) or "*"


def reason(covered: list[Example]) -> str:
    """The most common failure message among the covered examples, without node names."""
    whys = Counter(_clean(e.why) for e in covered if not e.works)
    return whys.most_common(1)[0][0] if whys else ""


def _clean(why: str) -> str:
    text = re.sub(r"^convert: ", "", why)
    text = re.sub(r"\(node '[^']*'\) ", "", text)
    text = re.sub(r"^op \S+ could not be converted by onnx2tf: ", "onnx2tf fails: ", text)
    text = re.sub(r"/\S*?\.py:\d+:\d+: ", " ", text)  # source locations of the converted file
    if text.startswith("output ") and "differs" in text:
        return "converts, but the TFLite output differs from ONNX's"
    return text.replace("\t", " ")[:200]


def derive(examples: list[Example]) -> list[dict]:
    """Table rows: op, when, verdict (converts/fails), evidence (works/total covered), reason."""
    rows = []
    by_op: dict[str, list[Example]] = {}
    for e in examples:
        by_op.setdefault(e.op, []).append(e)
    for op in sorted(by_op):
        for when, works, covered in learn_op(by_op[op]):
            when = _scoped(when, covered)
            ok = sum(e.works for e in covered)
            rows.append(
                {
                    "op": op,
                    "when": when,
                    "verdict": "converts" if works else "fails",
                    "evidence": f"{ok}/{len(covered)}",
                    "reason": "" if works else reason(covered),
                }
            )
    return rows


def rules_for(rows: list[dict]) -> dict[str, list[dict]]:
    """The rows as the TFLite route reads them (for judging held-out tests without writing the table)."""
    from edgebuild.coverage.tflite import rules_from_rows

    return rules_from_rows(rows)


def load_results(paths: list[Path]) -> dict[str, tuple[bool, str]]:
    results = {}
    for path in paths:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            results[r["test"]] = (r["works"], r["why"])
    return results


def write_table(rows: list[dict], tests: int, onnx2tf_version: str) -> None:
    header = [
        f"# source: measured {len(rows)} rules from {tests} ONNX node tests (onnx 1.22.0 wheel), each converted by "
        f"edgebuild's tflite.convert (onnx2tf {onnx2tf_version}, fp32) and run with ai-edge-litert against the "
        "test's reference outputs; derived by scripts/derive_tflite_rules.py.",
        "# Per op, the first rule whose `when` matches the node decides (features: edgebuild/coverage/node_features.py);"
        " '*' matches any node. evidence = tests that worked / tests the rule covers.",
    ]
    lines = header + ["op\twhen\tverdict\tevidence\treason"]
    lines += [f"{r['op']}\t{r['when']}\t{r['verdict']}\t{r['evidence']}\t{r['reason']}" for r in rows]
    TABLE.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--node-dir", type=Path, required=True)
    parser.add_argument("--onnx2tf-version", default="1.29.24")
    args = parser.parse_args()
    results = load_results(args.results)
    rows = derive(examples_from_results(results, args.node_dir))
    write_table(rows, len(results), args.onnx2tf_version)
    print(f"{TABLE}: {len(rows)} rules for {len({r['op'] for r in rows})} ops from {len(results)} tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
