"""GRF404 duplicate-initializer."""

from __future__ import annotations

from ..._onnx import TensorProto

from ...findings import Severity
from ...dtype_limits import ITEMSIZE
from ...model import Graph
from ...patterns.duplicates import content_key
from ...rule import Context, Rule
from ._util import human_bytes, type_text


# Duplicates this small (scalars, 4-element vectors) are reported together, one finding per graph.
SMALL_BYTES = 16


class DuplicateInitializer(Rule):
    """An initializer with the same type, shape and bytes as another one of the same graph.

    ## What it does
    Groups the initializers of each graph by element type, dims and content, and reports every
    member of a group after the first. Duplicates of 16 bytes or less (scalars: zero points, axes,
    1.0) are reported together, one finding per graph. Inline data is compared by a BLAKE2 digest of its bytes
    (hashed only when type and dims already agree); external data is compared by its
    (location, offset, length) only and never read.

    ## Why it breaks TensorRT
    Exporters duplicate tied or identical weights (shared embeddings, all-zero biases, repeated
    scalars). Each copy is stored in the file and becomes a separate weight in the engine, so the
    model and engine are bigger than needed; deduplicating also lets later passes see that two
    nodes read the same weight.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => (float[2] y) <float[2] a = {1, 2}, float[2] b = {1, 2}> {
          s = Add(x, a)
          y = Mul(s, b)
        }

    ## How to fix
    Point every reader of a duplicate at the first copy and drop the rest; `onnxdoctor fix` does it
    (`dedupe-initializers`, like onnxslim).

    ## Fix safety
    `dedupe-initializers` is safe: the tensors are bit-identical.

    ## TensorRT versions
    All releases.

    ## Sources
    onnxslim `dead_node_elimination`/initializer deduplication; ONNX external-data spec
    (`location`, `offset`, `length` keys).
    """

    code = "GRF404"
    name = "duplicate-initializer"
    severity = Severity.INFO
    summary = "initializer identical to another one"
    release_independent = True

    def check(self, ctx: Context):
        for g in ctx.model.graphs:
            small: list[tuple[str, str]] = []  # (duplicate, first copy) of the tiny ones
            for name, first, dtype, dims, nbytes, how in _duplicates(ctx, g):
                if nbytes <= SMALL_BYTES and how == "the same bytes":
                    small.append((name, first))
                    continue
                yield self._one(ctx, g, name, first, f"{type_text(dtype, dims)}, {human_bytes(nbytes)}, {how}")
            if len(small) == 1:
                name, first = small[0]
                t = g.initializers[name]
                yield self._one(ctx, g, name, first, f"{type_text(t.data_type, tuple(t.dims))}, "
                                f"{human_bytes(_nbytes(t.data_type, tuple(t.dims)))}, the same bytes")
            elif small:
                # Scalars and tiny vectors (zero points, a 1.0, an axis) repeat by the dozen in exported
                # models: one finding per graph, not one line per copy.
                shown = ", ".join(f"{n!r} = {f!r}" for n, f in small[:3])
                more = f" and {len(small) - 3} more" if len(small) > 3 else ""
                yield self.finding(
                    ctx,
                    f"{len(small)} small initializers ({SMALL_BYTES} bytes or less each) duplicate others: {shown}{more}",
                    tensor=small[0][0], subgraph=g.path, versions=ctx.kb.versions,
                    hint="onnxdoctor fix points every reader at one copy",
                )

    def _one(self, ctx: Context, g: Graph, name: str, first: str, what: str):
        return self.finding(
            ctx, f"initializer {name!r} duplicates {first!r} ({what})",
            tensor=name, subgraph=g.path, versions=ctx.kb.versions, hint=f"read {first!r} instead",
        )


_EXTERNAL = TensorProto.EXTERNAL


def _nbytes(dtype: int, dims: tuple) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n * ITEMSIZE.get(dtype, 1)


def _duplicates(ctx: Context, g: Graph):
    """(name, first copy's name, dtype, dims, bytes, how) of every duplicate initializer of `g`."""
    if len(g.initializers) < 2:
        return
    # cheap key first: most initializers differ in type or dims, and are never hashed. Each tensor with
    # its name, the table's key (not read from the proto again)
    by_shape: dict[tuple, list[tuple[str, TensorProto]]] = {}
    for name, t in g.initializers.items():
        external = t.data_location == _EXTERNAL
        by_shape.setdefault((t.data_type, tuple(t.dims[:]), external), []).append((name, t))  # [:]: one C call
    for (dtype, dims, external), group in by_shape.items():
        if len(group) < 2:
            continue
        if not external:
            group = _sample_collisions(g, group)
        first: dict[object, str] = {}
        refs = ctx.model.external_refs
        for name, t in group:
            ref = refs.get(name) if external else None
            if ref is not None:  # content_key's answer for a reference validated at load, without the call
                key = ("external", ref.location, ref.offset, ref.length) if ref.length is not None else None
            else:
                key = content_key(t, external, refs, g.lazy_raw.get(name))
            if key is None:
                continue
            if key not in first:
                first[key] = name
                continue
            how = "the same external data" if external else "the same bytes"
            yield name, first[key], dtype, dims, _nbytes(dtype, dims), how


def _sample_collisions(g: Graph, group: list[tuple[str, TensorProto]]) -> list[tuple[str, TensorProto]]:
    """The (name, tensor) members whose length and sampled bytes (head, middle, tail) equal another
    member's: only those can be duplicates, so real weights of equal shape are rarely hashed (or read)
    in full."""
    by_sample: dict[tuple, list[tuple[str, TensorProto]]] = {}
    for name, t in group:
        lazy = g.lazy_raw.get(name)
        if lazy is not None:
            n, mid = lazy.length, lazy.length // 2
            key: tuple = (n, lazy.read(0, 64), lazy.read(mid, 64), lazy.read(max(n - 64, 0), 64))
        elif t.HasField("raw_data"):
            data = t.raw_data
            n, mid = len(data), len(data) // 2
            key = (n, data[:64], data[mid:mid + 64], data[-64:])
        else:
            key = ("typed",)
        by_sample.setdefault(key, []).append((name, t))
    return [m for members in by_sample.values() if len(members) > 1 for m in members]
