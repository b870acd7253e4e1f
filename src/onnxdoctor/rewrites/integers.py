"""Integer types TensorRT cannot hold inside a network (UINT8 between layers, INT16, UINT16, UINT32),
computed in INT32 (UINT32: INT64) with the narrow type's wrap-around made explicit."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from ..findings import Applicability
from .._proto import bodies, graphs, rename, toposorted
from .base import Outcome, Rewrite, RewriteContext

# narrow type -> (wide type, modulus, offset): a wide value v is brought back into the narrow range by
# ((v + offset) mod modulus) - offset, with ONNX Mod (fmod=0: the result has the sign of the divisor).
NARROW: dict[int, tuple[int, int, int]] = {
    TP.UINT8: (TP.INT32, 256, 0),
    TP.UINT16: (TP.INT32, 65536, 0),
    TP.INT16: (TP.INT32, 65536, 32768),
    TP.UINT32: (TP.INT64, 2**32, 0),
}
# Ops whose integer results stay in their inputs' range: they run on the wide values unchanged.
CLOSED = frozenset({
    "Identity", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Expand", "Tile", "Slice", "Gather",
    "GatherElements", "GatherND", "Concat", "Split", "Max", "Min", "ReduceMax", "ReduceMin", "Where", "Equal", "Less",
    "Greater", "LessOrEqual", "GreaterOrEqual", "ArgMax", "ArgMin", "Relu", "Shape", "Size", "DepthToSpace",
    "SpaceToDepth", "TopK", "Pad",
})
# Ops whose integer results wrap around in the narrow type: wrapped explicitly after the wide op.
WRAPPING = frozenset({"Add", "Sub", "Mul", "Neg", "Abs", "Sum", "ReduceSum", "ReduceProd", "CumSum"})
# Inputs of these ops that are indices or shapes, never data: their type is left alone.
_DATA_INPUTS = {"Reshape": (0,), "Expand": (0,), "Tile": (0,), "Slice": (0,), "Gather": (0,), "GatherElements": (0,),
                "GatherND": (0,), "Squeeze": (0,), "Unsqueeze": (0,), "Split": (0,), "ReduceMax": (0,), "ReduceMin": (0,),
                "ReduceSum": (0,), "ReduceProd": (0,), "CumSum": (0,), "TopK": (0,), "Pad": (0, 2), "Where": (1, 2)}
# Ops whose outputs are not of the data type (indices, booleans, shapes).
_NON_DATA_OUTPUTS = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "ArgMax", "ArgMin", "Shape", "Size"}


def _name(t: int) -> str:
    return TP.DataType.Name(t)


class SmallIntToInt32(Rewrite):
    """Compute UINT8, INT16, UINT16 and UINT32 tensors inside the network in INT32 (UINT32: INT64),
    with their wrap-around made explicit.

    ## What it does
    In every graph (control-flow bodies included), a `Cast` to one of those types becomes a `Cast`
    to the wide type followed by the wrap into the narrow range (`Mod(v, 256)` for UINT8,
    `Mod(v + 32768, 65536) - 32768` for INT16, ...); initializers and `Constant`s of those types become
    wide; ops whose results stay in range (movement, Max/Min, comparisons, Where, ArgMax, ...) run on
    the wide values as they are; `Add`/`Sub`/`Mul`/`Neg`/`Abs`/`Sum`/`ReduceSum`/`ReduceProd`/`CumSum`
    run wide and are wrapped after. Where a narrow value meets anything else (another op, a graph
    output, a read from a control-flow body), it is cast back to its own type, so the interface and
    every op the rewrite does not know see exactly what they saw before.

    ## When it applies
    TRT113 (UINT8 inside the network, outside quantization), TRT111 (INT16/UINT16/UINT32 value inside
    the network), TRT121 (`Cast` to INT16/UINT16/UINT32) and TRT116 (a UINT8 network input fed to an
    op that rejects UINT8 but moves or compares values, such as `Concat`: it is cast to INT32 first). Not for graph inputs and outputs (the
    model's interface), not for UINT32 when the release's `Mod` has no INT64, and not before opset 10
    (no integer `Mod`).

    ## Example
    `u = Cast<to=UINT8>(x); v = Add(u, u); y = Cast<to=FLOAT>(v)` becomes
    `w = Cast<to=INT32>(x); u = Mod(w, 256); s = Add(u, u); v = Mod(s, 256); y = Cast<to=FLOAT>(v)`.

    ## Safety
    Safe: every wide value equals the narrow one (the wrap reproduces the narrow type's modular
    arithmetic and the conversion of out-of-range values); proven in ONNX Runtime.

    ## Resolves
    TRT111, TRT113, TRT116, TRT121
    """

    name = "small-int-to-int32"
    reads_weights = True  # the fix pipeline gives it the model with its weights
    phase = 30
    summary = "compute UINT8/INT16/UINT16/UINT32 tensors inside the network in INT32 with explicit wrap-around"
    applicability = Applicability.SAFE
    resolves = ("TRT111", "TRT113", "TRT116", "TRT121")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        from .._proto import default_opset
        from .substitutions._build import ModelInfo

        if default_opset(model) < 10:
            return Outcome(model, skipped=["integer Mod (the wrap-around) needs opset 10"])
        narrow = dict(NARROW)
        mod_types = ctx.target.release.ops.get("Mod", ())
        skipped: list[str] = []
        if "INT64" not in mod_types:
            narrow.pop(TP.UINT32)
            skipped.append(f"UINT32 left alone: TensorRT {ctx.target.release.version}'s Mod has no INT64")
        out = onnx.ModelProto()
        out.CopyFrom(model)
        info = ModelInfo(out)
        changes: list[str] = []
        _rewrite_graph(out.graph, info, narrow, changes, skipped, main=True)
        if not changes:
            return Outcome(model, skipped=skipped or ["no UINT8/INT16/UINT16/UINT32 tensor inside the network"])
        return Outcome(out, changes, skipped)


class _Graph:
    """The rewrite of one graph: which narrow tensors hold wide values, and the Casts between forms."""

    def __init__(self, g: onnx.GraphProto, info, narrow: dict, changes: list[str], skipped: list[str], main: bool):
        self.g, self.info, self.narrow, self.changes, self.skipped = g, info, narrow, changes, skipped
        self.interface = {vi.name for vi in g.output} | ({vi.name for vi in g.input} if main else set())
        self.inits = {t.name: t for t in g.initializer}
        self.wide: dict[str, int] = {}  # narrow tensor now holding wide values -> its narrow type
        self.as_wide: dict[str, str] = {}  # narrow tensor -> its wide copy (a Cast)
        self.as_narrow: dict[str, str] = {}  # widened tensor -> its narrow copy (a Cast)
        self.consts: dict[tuple[int, int], str] = {}
        self.nodes: list[onnx.NodeProto] = []

    def ntype(self, name: str) -> int | None:
        t = self.info.types.get(name)
        return t if t in self.narrow else None

    def const(self, value: int, t: int, base: str) -> str:
        key = (t, value)
        if key not in self.consts:
            name = self.info.unique(base)
            self.g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=helper.tensor_dtype_to_np_dtype(t)), name))
            self.consts[key] = name
        return self.consts[key]

    def wrap(self, src: str, out: str, nt: int) -> None:
        """Nodes computing `out` (narrow range, wide type) from the wide value `src`."""
        wt, modulus, offset = self.narrow[nt]
        m = self.const(modulus, wt, f"{_name(nt).lower()}_modulus")
        u = self.info.unique
        if not offset:
            self.nodes.append(helper.make_node("Mod", [src, m], [out], name=u(f"{out}/wrap"), fmod=0))
            return
        o = self.const(offset, wt, f"{_name(nt).lower()}_offset")
        shifted, moded = u(f"{out}/shifted"), u(f"{out}/wrapped")
        self.nodes += [helper.make_node("Add", [src, o], [shifted], name=u(f"{out}/wrap_add")),
                       helper.make_node("Mod", [shifted, m], [moded], name=u(f"{out}/wrap"), fmod=0),
                       helper.make_node("Sub", [moded, o], [out], name=u(f"{out}/wrap_sub"))]

    def wide_input(self, name: str, nt: int) -> str:
        if name in self.wide:
            return name
        if name in self.as_wide:
            return self.as_wide[name]
        wt = self.narrow[nt][0]
        init = self.inits.get(name)
        if init is not None and name not in self.interface:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(helper.tensor_dtype_to_np_dtype(wt)), name))
            self.wide[name] = nt
            self.changes.append(f"initializer {name!r} {_name(nt)} -> {_name(wt)}")
            return name
        new = self.info.unique(f"{name}__{_name(wt).lower()}")
        self.nodes.append(helper.make_node("Cast", [name], [new], name=new, to=wt))
        self.as_wide[name] = new
        return new

    def narrow_input(self, name: str) -> str:
        if name not in self.as_narrow:
            new = self.info.unique(f"{name}__{_name(self.wide[name]).lower()}")
            self.nodes.append(helper.make_node("Cast", [name], [new], name=new, to=self.wide[name]))
            self.as_narrow[name] = new
        return self.as_narrow[name]

    def visit(self, node: onnx.NodeProto) -> None:
        std, op = node.domain in ("", "ai.onnx"), node.op_type
        label = node.name or (node.output[0] if node.output else op)
        if std and op == "Constant" and node.output and self.ntype(node.output[0]) and node.output[0] not in self.interface:
            a = next((a for a in node.attribute if a.name == "value"), None)
            if a is not None and a.t.data_type in self.narrow:
                nt = a.t.data_type
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(helper.tensor_dtype_to_np_dtype(self.narrow[nt][0])), a.t.name))
                self.wide[node.output[0]] = nt
                self.nodes.append(node)
                self.changes.append(f"Constant {label!r} {_name(nt)} -> {_name(self.narrow[nt][0])}")
                return
        to = next((a.i for a in node.attribute if a.name == "to"), None) if std and op == "Cast" else None
        if to in self.narrow and node.output[0] not in self.interface:
            # Cast into the narrow type: cast to the wide type, then wrap into the narrow range.
            out, wt = node.output[0], self.narrow[to][0]
            raw = self.info.unique(f"{out}__{_name(wt).lower()}")
            self.nodes.append(helper.make_node("Cast", [node.input[0]], [raw], name=node.name or raw, to=wt))
            self.wrap(raw, out, to)
            self.wide[out] = to
            self.changes.append(f"Cast {label!r} to {_name(to)} computed in {_name(wt)} with wrap-around")
            return
        data_pos = _DATA_INPUTS.get(op, tuple(range(len(node.input))))
        narrow_ins = {self.ntype(i) for k, i in enumerate(node.input) if k in data_pos and i and self.ntype(i)}
        data_outs = [o for o in node.output if o] if op not in _NON_DATA_OUTPUTS else []
        if (std and (op in CLOSED or op in WRAPPING) and len(narrow_ins) == 1
                and all(self.ntype(o) in narrow_ins for o in data_outs) and not any(True for _ in bodies(node))):
            nt = narrow_ins.pop()
            for k, i in enumerate(node.input):
                if k in data_pos and i and self.ntype(i):
                    node.input[k] = self.wide_input(i, nt)
            wraps = []
            if op in WRAPPING:
                for j, o in enumerate(node.output):
                    if o in data_outs:
                        raw = self.info.unique(f"{o}__{_name(self.narrow[nt][0]).lower()}")
                        node.output[j] = raw
                        wraps.append((raw, o))
            self.nodes.append(node)
            for raw, o in wraps:
                self.wrap(raw, o, nt)
            self.wide.update((o, nt) for o in data_outs)
            self.changes.append(f"{op} {label!r} runs on {_name(self.narrow[nt][0])}" + (" with wrap-around" if wraps else ""))
            return
        if not (std and op == "Cast"):  # a Cast from a widened value to another type sees the same values
            for k, i in enumerate(node.input):
                if i in self.wide:
                    node.input[k] = self.narrow_input(i)
                    self.skipped.append(f"{op} {label!r} reads {i!r} as {_name(self.wide[i])}: this rewrite does not compute it wide")
        self.nodes.append(node)

    def finish(self) -> None:
        g = self.g
        # Graph outputs that hold wide values keep their declared type: cast back at the end.
        renames = {vi.name: self.info.unique(f"{vi.name}__{_name(self.narrow[self.wide[vi.name]][0]).lower()}")
                   for vi in g.output if vi.name in self.wide}
        if renames:
            for n in self.nodes:
                for k, o in enumerate(n.output):
                    if o in renames:
                        n.output[k] = renames[o]
                for k, i in enumerate(n.input):
                    if i in renames:
                        n.input[k] = renames[i]
            for name, inner in renames.items():
                self.nodes.append(helper.make_node("Cast", [inner], [name], name=self.info.unique(f"{name}/out"), to=self.wide[name]))
        # Bodies read widened values in their declared narrow type.
        for n in list(self.nodes):
            for b in bodies(n):
                rename(b, {name: self.narrow_input(name) for name in self.wide if name not in renames and _reads(b, name)})
        del g.node[:]
        g.node.extend(toposorted(self.nodes))
        keep = [vi for vi in g.value_info if vi.name not in self.wide]
        del g.value_info[:]
        g.value_info.extend(keep)


def _rewrite_graph(g: onnx.GraphProto, info, narrow: dict, changes: list[str], skipped: list[str], main: bool) -> None:
    work = _Graph(g, info, narrow, changes, skipped, main)
    for node in list(g.node):
        work.visit(node)
    work.finish()
    for n in g.node:
        for b in bodies(n):
            _rewrite_graph(b, info, narrow, changes, skipped, main=False)


def _reads(g: onnx.GraphProto, name: str) -> bool:
    return any(any(name in n.input for n in cur.node) or any(vi.name == name for vi in cur.output) for cur in graphs(g))


REWRITES = (SmallIntToInt32,)
