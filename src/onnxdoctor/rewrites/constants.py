"""Build-time constants in the form TensorRT reads: sparse initializers and sparse `Constant`
values stored dense."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..findings import Applicability
from .._proto import bodies
from .base import Outcome, Rewrite, RewriteContext

# Dense tensors above this size are left sparse (densifying must not explode a model).
MAX_DENSE_BYTES = 64 * 2**20


def dense(sparse: onnx.SparseTensorProto) -> np.ndarray:
    """The dense array of a SparseTensorProto (indices: linear [NNZ] or coordinates [NNZ, rank])."""
    values = numpy_helper.to_array(sparse.values)
    shape = tuple(int(d) for d in sparse.dims)
    out = np.zeros(shape, dtype=values.dtype)
    if values.size:
        idx = numpy_helper.to_array(sparse.indices).astype(np.int64)
        if idx.ndim == 1:
            out.reshape(-1)[idx] = values.reshape(-1)
        else:
            out[tuple(idx.T)] = values.reshape(-1)
    return out


class DensifySparseConstants(Rewrite):
    """Store sparse initializers and sparse `Constant` values as dense tensors.

    ## What it does
    In every graph, each `sparse_initializer` becomes an ordinary initializer of the same name with
    the zeros filled in, and each `Constant` with a `sparse_value` gets the dense `value` instead.
    Tensors whose dense form would exceed 64 MiB are left sparse (with the reason).

    ## When it applies
    TRT111 findings on sparse initializers ("not supported by the TensorRT ONNX parser"), and
    TRT121 findings on sparse `Constant` values (`Constant.sparse_value`).

    ## Example
    A sparse initializer `w` (dims [3,3], values [1,2], indices [0,4]) becomes the dense
    initializer `w = [[1,0,0],[0,2,0],[0,0,0]]`.

    ## Safety
    Safe: the same values; a sparse tensor's missing elements are zeros by definition.

    ## Resolves
    TRT111, TRT121
    """

    name = "densify-sparse-constants"
    phase = 20
    summary = "store sparse initializers and sparse Constant values as dense tensors"
    applicability = Applicability.SAFE
    resolves = ("TRT111", "TRT121")

    def apply(self, model: onnx.ModelProto, ctx: RewriteContext) -> Outcome:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        changes: list[str] = []
        skipped: list[str] = []
        stack = [out.graph]
        while stack:
            g = stack.pop()
            keep = []
            for st in g.sparse_initializer:
                size = int(np.prod([int(d) for d in st.dims])) * onnx.helper.tensor_dtype_to_np_dtype(st.values.data_type).itemsize
                if size > MAX_DENSE_BYTES:
                    skipped.append(f"sparse initializer {st.values.name!r}: {size / 2**20:.0f} MiB dense, above the 64 MiB cap")
                    keep.append(st)
                    continue
                g.initializer.append(numpy_helper.from_array(dense(st), st.values.name))
                changes.append(f"sparse initializer {st.values.name!r} stored dense ({list(st.dims)})")
            if len(keep) != len(g.sparse_initializer):
                del g.sparse_initializer[:]
                g.sparse_initializer.extend(keep)
            for n in g.node:
                if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                    a = next((a for a in n.attribute if a.name == "sparse_value"), None)
                    if a is not None:
                        value = numpy_helper.from_array(dense(a.sparse_tensor), n.output[0])
                        del n.attribute[:]
                        n.attribute.append(onnx.helper.make_attribute("value", value))
                        changes.append(f"Constant {n.name or n.output[0]!r} sparse_value stored dense")
                stack.extend(bodies(n))
        if not changes:
            return Outcome(model, skipped=skipped or ["no sparse initializer or sparse Constant"])
        return Outcome(out, changes, skipped)


REWRITES = (DensifySparseConstants,)
