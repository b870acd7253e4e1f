"""SHP204 runtime-shape-computation."""

from __future__ import annotations

import collections

from ...findings import Fix, Severity
from ...model import Graph
from ...rule import Context, Rule
from ._analysis import ValueClasses, value_classes



class RuntimeShapeComputation(Rule):
    """A shape computation (Shape → Gather/Slice → Concat → Reshape) that is constant once input shapes are fixed.

    ## What it does
    Finds chains of shape operations that start at `Shape`/`Size` of a tensor whose dims are fixed
    numbers or dims of graph inputs, run through value ops (`Gather`, `Slice`, `Concat`,
    `Unsqueeze`, `Cast`, arithmetic, `Range`, `ConstantOfShape`, ...) and end in a consumer such as
    `Reshape`, `Expand` or `Range`. Each connected chain is reported once, at its first consumer,
    with its node count and the input dims it depends on.

    - Without `--shape`: chains that would become constant if the named input dims were fixed
      (fix: `freeze-shapes`, which needs `--shape`).
    - With `--shape`: chains that *became* constant because of the frozen inputs (fix:
      `fold-constants`), plus any chain still waiting for an input that was not frozen.

    ## Why it breaks TensorRT
    It does not break the build. TensorRT evaluates these chains as shape tensors on every
    inference (on the host, between enqueues), and layers fed by them get shapes that are unknown
    at build time, so the builder cannot specialize them. When the deployment uses one input shape,
    freezing and folding removes the chain and makes every downstream shape static; exporters
    emit dozens of such chains per transformer layer.

    ## Example
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[batch,4] x) => (float[batch,2,2] y) {
          s = Shape(x)
          i0 = Constant<value = int64[1] {0}>()
          b = Gather<axis = 0>(s, i0)
          tail = Constant<value = int64[2] {2, 2}>()
          shape = Concat<axis = 0>(b, tail)
          y = Reshape(x, shape)
        }

    ## How to fix
    If the engine runs with fixed input shapes, check and fix with `--shape NAME:DIMS`:
    `freeze-shapes` fixes the inputs and `fold-constants` replaces the chains by initializers.
    With dynamic shapes, leave them: TensorRT evaluates them at runtime.

    ## Fix safety
    `fold-constants` is exact (safe). `freeze-shapes` is exact for the given shapes, and the frozen
    model accepts only those shapes.

    ## TensorRT versions
    Every release.

    ## Sources
    TensorRT developer guide, "Execution tensors vs. shape tensors" (shape tensors computed on the
    host at runtime); Polygraphy `surgeon sanitize --fold-constants` and `--override-input-shapes`
    (the same freeze-then-fold recipe).
    """

    code = "SHP204"
    name = "runtime-shape-computation"
    severity = Severity.INFO
    summary = "shape computation that is constant once input shapes are fixed"
    release_independent = True

    def check(self, ctx: Context):
        model = ctx.model
        for g in model.graphs:
            if g.function is not None or not g.nodes:
                continue
            vc = value_classes(ctx, g)
            folded = vc.frozen_const()
            if folded:
                yield from self._chains(ctx, g, vc, folded, self.fix_by("fold-constants"))
            freezable = vc.freezable()
            if freezable:
                yield from self._chains(ctx, g, vc, freezable, self.fix_by("freeze-shapes"))

    def _chains(self, ctx: Context, g: Graph, vc: ValueClasses, tensors: set[str], fix: Fix):
        outs = g.node_outputs
        in_chain = tensors.__contains__
        members = sorted({g.producers[t][0] for t in tensors if t in g.producers})
        if not members:
            return
        parent = {i: i for i in members}

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        consumers: dict[int, set[int]] = collections.defaultdict(set)  # member -> non-member consumers
        to_outputs: dict[int, list[str]] = collections.defaultdict(list)
        member_set = set(members)
        graph_outputs = set(g.outputs)
        for i in members:
            for o in outs[i]:
                if not o or not in_chain(o):
                    continue
                for c in g.consumers.get(o, ()):
                    if c in member_set:
                        a, b = find(i), find(c)
                        if a != b:
                            parent[a] = b
                    else:
                        consumers[i].add(c)
                if o in graph_outputs:
                    to_outputs[i].append(o)
        groups: dict[int, list[int]] = collections.defaultdict(list)
        for i in members:
            groups[find(i)].append(i)
        for nodes in groups.values():
            # value consumers first: a Shape/Size reading a chain tensor does not use its value
            sinks = sorted({c for i in nodes for c in consumers.get(i, ())},
                           key=lambda c: (g.nodes[c].op_type in ("Shape", "Size"), c))
            outputs = [o for i in nodes for o in to_outputs.get(i, ())]
            if not sinks and not outputs:
                continue  # dead: graph hygiene, not a shape problem
            ops = collections.Counter(g.nodes[i].op_type for i in nodes)
            summary = ", ".join(f"{op}×{n}" if n > 1 else op for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
            dims = sorted({d for i in nodes for o in outs[i] if o for d in vc.dims_read.get(o, ())})
            n = len(nodes)
            head = f"{n}-node shape computation ({summary})"
            if sinks:
                first = g.ref(sinks[0])
                more = f" (and {len(sinks) - 1} more)" if len(sinks) > 1 else ""
                where = f"feeding {first.op_type} {first.name!r}{more}"
            else:
                first = None
                where = f"producing graph output {outputs[0]!r}"
            if fix.rewrite == "fold-constants":
                frozen = ", ".join(repr(x) for x in ctx.model.frozen_inputs)
                msg = f"{head} {where} became constant with the frozen input shapes ({frozen}); fold-constants replaces it"
                hint = "fold constants (onnxdoctor fix with the same --shape)"
            else:
                on = (f"input dim {dims[0]} is" if len(dims) == 1 else f"input dims {', '.join(dims)} are") if dims else "the input shapes are"
                msg = f"{head} {where} is constant once {on} fixed"
                hint = "if the engine runs with fixed shapes, pass --shape NAME:DIMS to freeze the inputs and fold it"
            yield self.finding(ctx, msg, node=first, tensor=None if first else outputs[0], subgraph=g.path,
                               hint=hint, fix=fix)
