"""GRF401 constant-foldable-subgraph."""

from __future__ import annotations

from collections import Counter

from ...findings import Severity
from ...rule import Context, Rule
from .._ifcond import condition_kind
from ._util import human_bytes, nbytes, nested_uses

FOLD_CAP = 64 * 2**20  # fold-constants leaves results bigger than this unfolded
_NOOPS = frozenset({"Identity"})


class ConstantFoldableSubgraph(Rule):
    """A group of nodes whose outputs depend only on initializers and Constants.

    ## What it does
    Finds every maximal connected group of non-`Constant` nodes whose outputs can be computed from
    initializers, `Constant` nodes and statically known shapes alone, and reports it once, at its
    last node, with the number of nodes and the bytes that folding would store. Groups made only of
    `Identity` nodes are left to `noop-node`; groups whose result nobody reads are left to
    `dead-node`.

    ## Why it breaks TensorRT
    TensorRT evaluates such layers at build time, but the parser must first import every node: an
    op the release lacks an importer for fails the parse even when its value is constant, and many
    importers require inputs (Reshape shapes, Slice starts, Resize scales, Pad pads) to be
    *initializers*, not outputs of a constant computation. Folding turns the group into
    initializers, shortens the graph and removes shape chains that TorchScript exports are full of.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2,3] x) => (float[2,3] y) <float[3] a = {1, 2, 3}, float[3] b = {4, 5, 6}> {
          c = Add(a, b)
          d = Mul(c, a)
          y = Add(x, d)
        }

    `Add` and `Mul` compute a constant `d` (2 nodes, 12 bytes).

    ## How to fix
    `onnxdoctor fix` folds the group into one initializer per output it produces (Polygraphy's
    `fold_constants` or `onnxsim` do the same). A group whose result is larger than 64 MiB is
    reported without a fix: folding it would bloat the model file, and TensorRT computes it at build
    time anyway. An `If` whose condition is constant is reported too: `inline-constant-if` replaces
    it by the branch that runs.

    ## Fix safety
    `fold-constants` is safe: the values are computed by ONNX Runtime exactly as at run time.
    `inline-constant-if` is safe: the condition has one value on every run.

    ## TensorRT versions
    All releases.

    ## Sources
    onnx-tensorrt `ModelImporter.cpp` (every node is imported before the builder's own constant
    folding); the "must be an initializer" assertions in `onnxOpImporters.cpp`
    (`ASSERT_INPUT(inputs.at(1).is_weights(), ...)`); Polygraphy `surgeon sanitize --fold-constants`.
    """

    code = "GRF401"
    name = "constant-foldable-subgraph"
    severity = Severity.INFO
    summary = "nodes that compute a constant and can be folded into initializers"
    release_independent = True

    def check(self, ctx: Context):
        yield from self._constant_ifs(ctx)
        for g in ctx.model.graphs:
            nodes = g.nodes
            cv = ctx.model.constants(g)
            foldable = set(cv.computed_constants)
            if not foldable:
                continue
            parent = {i: i for i in foldable}

            def find(i: int) -> int:
                while parent[i] != i:
                    parent[i] = parent[parent[i]]
                    i = parent[i]
                return i

            for i in foldable:
                for inp in g.node_inputs[i]:
                    hit = g.producers.get(inp)
                    if hit is not None and hit[0] in foldable:
                        a, b = find(i), find(hit[0])
                        if a != b:
                            parent[a] = b
            groups: dict[int, list[int]] = {}
            # members in topological order, so that a group's last node is the same whatever the file's order
            order = sorted(foldable) if g.topo_sorted else [i for i in g.topo_order if i in foldable]
            for i in order:
                groups.setdefault(find(i), []).append(i)
            outputs = set(g.outputs)
            # Values read from inside control-flow bodies count as read: folding them is what lets
            # the bodies fold too.
            nested = nested_uses(ctx, g) if g.may_nest else set()
            for members in groups.values():
                if all(nodes[i].op_type in _NOOPS for i in members):
                    continue
                inside = set(members)
                produced = [
                    o for i in members for o in g.node_outputs[i]
                    if o and (o in outputs or o in nested or any(c not in inside for c in g.consumers.get(o, ())))
                ]
                if not produced:
                    continue  # nothing reads the result: dead-node reports it
                sizes = [nbytes(g, o) for o in produced]
                if all(s is None for s in sizes):
                    vals = [cv.value(o) for o in produced]
                    sizes = [None if v is None else int(v.nbytes) for v in vals]
                last = members[-1]
                ops = Counter(nodes[i].op_type for i in members)
                op_text = ", ".join(f"{op}×{n}" if n > 1 else op for op, n in ops.most_common())
                n = len(members)
                head = f"{n} node{'s' if n > 1 else ''} ({op_text}) compute{'s' if n == 1 else ''} a constant"
                known = sum(s for s in sizes if s is not None)
                fix = None
                if None in sizes:
                    size = f"size of {'some outputs' if known else 'the result'} unknown (shapes not inferred)"
                    if known:
                        size += f", at least {human_bytes(known)}"
                else:
                    size = human_bytes(known)
                if known > FOLD_CAP:
                    msg = f"{head}, but folding would create {known / 2**20:.0f} MiB (above the 64 MiB cap); left to TensorRT's build-time folding"
                else:
                    fix = self.fix_by("fold-constants")
                    msg = f"{head}: folding stores {len(produced)} tensor{'s' if len(produced) > 1 else ''}, {size}"
                yield self.finding(
                    ctx, msg, node=g.ref(last), tensor=produced[0], versions=ctx.kb.versions,
                    fix=fix, hint=None if fix is None else "onnxdoctor fix folds it into initializers",
                )

    def _constant_ifs(self, ctx: Context):
        for ref in ctx.nodes_of("If"):
            kind = condition_kind(ctx.model, ref)
            if kind is None:
                continue
            v = ctx.model.constants(ref.graph).value(ref.input(0))
            which = "only one branch" if v is None or v.size != 1 else f"only the {'then' if bool(v.reshape(-1)[0]) else 'else'} branch"
            yield self.finding(
                ctx, f"If has a constant condition{' once folded' if kind == 'folded' else ''}: {which} ever runs",
                node=ref, tensor=ref.input(0), versions=ctx.kb.versions, fix=self.fix_by("inline-constant-if"),
                hint="onnxdoctor fix replaces the If by the branch that runs",
            )
