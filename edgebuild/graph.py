"""Targets -> a graph of step nodes, shared between targets wherever the work is the same.

A node's id is a hash of its step kind and version, its parameters, its toolchain and the identity
of its inputs (content digest of a source file, or upstream node id + output name). Two targets
that begin with the same steps on the same bytes therefore share those nodes. The cache key that
decides whether a node must run is computed later from the actual digests of its inputs
(`actionkey.py`): the node id only decides what is the same work within one build.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgebuild.errors import ConfigError
from edgebuild.fsutil import relative_to_root
from edgebuild.hashing import canonical_json, sha256_bytes
from edgebuild.recipes import MODEL_REFS, RecipeStep
from edgebuild.steps import Step, get_step
from edgebuild.targets import ResolvedTarget


@dataclass(frozen=True)
class InputRef:
    label: str  # for people: "models/digits.onnx", "simplify.model"
    path: Path | None = None  # a source file or folder ...
    digest: str | None = None  # ... and its content digest
    node: str | None = None  # or an upstream node's output
    output: str | None = None

    def identity(self) -> Any:
        return self.digest if self.node is None else [self.node, self.output]


@dataclass
class Node:
    id: str
    step: str
    step_cls: type[Step]
    params: dict[str, Any]
    inputs: dict[str, InputRef]
    toolchain: dict | None  # None: edgebuild's own environment
    uses: dict[str, str] = field(default_factory=dict)  # target name -> recipe step id
    after: set[str] = field(default_factory=set)  # node ids that must succeed first (no data)
    missing: tuple[str, ...] = ()  # model data it needs but the model lacks
    model: str = ""  # the model it reads (for the missing-data note)

    @property
    def label(self) -> str:
        target, step_id = next(iter(self.uses.items()))
        return f"{target}/{step_id}"

    @property
    def deps(self) -> list[str]:
        return sorted({ref.node for ref in self.inputs.values() if ref.node} | self.after)


@dataclass(frozen=True)
class Artifact:
    node: str
    output: str
    filename: str


@dataclass
class TargetPlan:
    resolved: ResolvedTarget
    nodes: list[str]  # this target's nodes, in run order
    artifacts: list[Artifact]


@dataclass
class Graph:
    nodes: dict[str, Node]
    targets: dict[str, TargetPlan]

    def run_order(self) -> list[str]:
        """Node ids with every node after its dependencies (insertion order where it allows:
        an `after` edge added by a later target can point forward)."""
        waiting = {nid: set(n.deps) for nid, n in self.nodes.items()}
        consumers = self.consumers()
        ready = [nid for nid, deps in waiting.items() if not deps]
        order = []
        while ready:
            nid = ready.pop(0)
            order.append(nid)
            for consumer in consumers[nid]:
                waiting[consumer].discard(nid)
                if not waiting[consumer]:
                    ready.append(consumer)
        return order

    def needs_data_message(self, node: Node) -> str:
        """`needs calibration data: ...`: what the node's model lacks and how to provide it."""
        what = node.missing[0]
        data_format = "an .npz with one array per model input name, batch first"
        if what == "evaluation":
            data_format += ", plus `labels` for the accuracy gates"
        message = f'needs {what} data: add {what} = "FILE.npz" to [models.{node.model}] ({data_format})'
        recipes = [self.targets[t].resolved.recipe for t in node.uses if t in self.targets]
        if what == "calibration" and any("int8_mode" in r.parameters for r in recipes):
            message += ', or use int8_mode = "dynamic" on the target (no calibration needed)'
        return message

    def consumers(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self.nodes.values():
            for dep in node.deps:
                result[dep].append(node.id)
        return result


def _order_recipe_steps(resolved: ResolvedTarget) -> list[RecipeStep]:
    """Recipe steps in dependency order; a cycle or a reference to a step left out by `when` is
    reported by name."""
    by_id = {s.id: s for s in resolved.steps}
    all_ids = {s.id for s in resolved.recipe.steps}
    ordered: list[RecipeStep] = []
    state: dict[str, str] = {}

    def visit(step: RecipeStep, path: list[str]) -> None:
        if state.get(step.id) == "done":
            return
        if state.get(step.id) == "active":
            cycle = " -> ".join(path[path.index(step.id) :] + [step.id])
            raise ConfigError(f"recipe '{resolved.recipe.name}' has a cycle: {cycle}", resolved.recipe.file)
        state[step.id] = "active"
        for role, ref in step.inputs.items():
            if ref in MODEL_REFS:
                continue
            upstream = ref.split(".", 1)[0]
            if upstream not in by_id:
                why = "is left out by its `when` for this target" if upstream in all_ids else "does not exist"
                raise ConfigError(
                    f"target '{resolved.name}': step '{step.id}' input '{role}' needs step "
                    f"'{upstream}', which {why}",
                    resolved.recipe.file,
                )
            visit(by_id[upstream], path + [step.id])
        for upstream in step.after:
            if upstream in by_id:  # an `after` step left out by `when` imposes no order
                visit(by_id[upstream], path + [step.id])
        state[step.id] = "done"
        ordered.append(step)

    for step in resolved.steps:
        visit(step, [])
    return ordered


def _model_data(resolved: ResolvedTarget, ref: str) -> Path | None:
    """The model file a recipe input refers to ("model.evaluation"), None when absent or not model data."""
    return getattr(resolved.model, ref.split(".")[1]) if ref in MODEL_REFS else None


def build_graph(targets: list[ResolvedTarget], digest: Callable[[Path], str], root: Path) -> Graph:
    nodes: dict[str, Node] = {}
    plans: dict[str, TargetPlan] = {}
    for resolved in targets:
        local: dict[str, str] = {}  # recipe step id -> node id
        artifacts: list[Artifact] = []
        for step in _order_recipe_steps(resolved):
            cls = get_step(step.step)
            params = resolved.expand(step.params, f"step '{step.id}' params")
            required = cls().required_inputs(params)
            inputs: dict[str, InputRef] = {}
            missing: list[str] = []
            for role, ref in step.inputs.items():
                primary = cls.fallback_inputs.get(role)
                if (
                    primary
                    and primary in step.inputs
                    and _model_data(resolved, step.inputs[primary]) is not None
                ):
                    continue  # a stand-in for data the model has: not an input of this node
                if ref in MODEL_REFS:
                    path = getattr(resolved.model, ref.split(".")[1])
                    if path is None:
                        # data the step needs but the model lacks: the node stays in the graph and
                        # fails without running (`needs ... data`), so only its target is affected
                        if role in required:
                            missing.append(ref.split(".")[1])
                        continue
                    inputs[role] = InputRef(
                        label=relative_to_root(path, root), path=path, digest=digest(path)
                    )
                else:
                    upstream, _, output = ref.partition(".")
                    inputs[role] = InputRef(label=ref, node=local[upstream], output=output)
            toolchain = None if step.toolchain == "default" else resolved.recipe.toolchain
            identity = {
                "step": step.step,
                "version": cls.version,
                "params": params,
                "toolchain": toolchain,
                "inputs": {role: ref.identity() for role, ref in sorted(inputs.items())},
            }
            if missing:
                identity["missing"] = [resolved.model.name, *missing]
            node_id = sha256_bytes(canonical_json(identity))
            node = nodes.get(node_id)
            if node is None:
                node = nodes[node_id] = Node(
                    id=node_id,
                    step=step.step,
                    step_cls=cls,
                    params=params,
                    inputs=inputs,
                    toolchain=toolchain,
                    missing=tuple(missing),
                    model=resolved.model.name,
                )
            node.uses.setdefault(resolved.name, step.id)
            node.after.update(local[a] for a in step.after if a in local)
            local[step.id] = node_id
            for output, template in step.artifact.items():
                filename = resolved.expand(template, f"step '{step.id}' artifact")
                artifacts.append(Artifact(node=node_id, output=output or cls.outputs[0], filename=filename))
        plans[resolved.name] = TargetPlan(
            resolved=resolved, nodes=list(dict.fromkeys(local.values())), artifacts=artifacts
        )
    return Graph(nodes=nodes, targets=plans)


# --- export -----------------------------------------------------------------------------------


def to_json(graph: Graph) -> dict:
    return {
        "nodes": [
            {
                "id": n.id[:12],
                "step": n.step,
                "label": n.label,
                "targets": sorted(n.uses),
                "params": n.params,
                "inputs": {
                    r: ref.label if ref.node is None else ref.node[:12] for r, ref in n.inputs.items()
                },
            }
            for n in graph.nodes.values()
        ],
        "targets": {
            name: {
                "recipe": plan.resolved.recipe.name,
                "nodes": [n[:12] for n in plan.nodes],
                "artifacts": [a.filename for a in plan.artifacts],
            }
            for name, plan in graph.targets.items()
        },
    }


def _sources(graph: Graph) -> dict[str, str]:
    found = {}
    for node in graph.nodes.values():
        for ref in node.inputs.values():
            if ref.node is None:
                found[ref.label] = "src_" + (ref.digest or "")[:12]
    return found


def to_dot(graph: Graph) -> str:
    lines = ["digraph edgebuild {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
    for label, sid in sorted(_sources(graph).items()):
        lines.append(f"  {sid} [label={json.dumps(label)}, shape=note];")
    for node in graph.nodes.values():
        text = f"{node.step}\\n{', '.join(sorted(node.uses))}"
        lines.append(f'  n{node.id[:12]} [label="{text}"];')
        for role, ref in node.inputs.items():
            src = f"n{ref.node[:12]}" if ref.node else "src_" + (ref.digest or "")[:12]
            lines.append(f"  {src} -> n{node.id[:12]} [label={json.dumps(role)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for label, sid in sorted(_sources(graph).items()):
        lines.append(f'  {sid}[/"{label}"/]')
    for node in graph.nodes.values():
        lines.append(f'  n{node.id[:12]}["{node.step}<br/>{", ".join(sorted(node.uses))}"]')
        for role, ref in node.inputs.items():
            src = f"n{ref.node[:12]}" if ref.node else "src_" + (ref.digest or "")[:12]
            lines.append(f"  {src} -->|{role}| n{node.id[:12]}")
    return "\n".join(lines) + "\n"
