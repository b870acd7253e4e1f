"""The part of onnx that `check` uses: protobuf classes, the C++ extension, tensor values.

Importing the onnx package costs 0.15-0.25 s on the 2-core benchmark machine, a fifth of a whole
check of a 20,000-node model: its `__init__` pulls in helper, compose, numpy, ml_dtypes, protobuf's
json_format, importlib.metadata and more. A check needs two of its modules: the generated protobuf
module `onnx.onnx_ml_pb2` (the classes) and the C++ extension `onnx.onnx_cpp2py_export` (shape
inference, operator schemas).

When the CLI's `check` asks for it (`use_light()`, called before anything here is read) and the onnx
package is not imported yet, this module loads those two by file location under their own module
names, without running the package's `__init__` (~0.06 s). A later `import onnx` in the same process
(`full()`) finds them in `sys.modules` and reuses them, so there is one set of classes either way.
Everywhere else (the Python API, `fix`, `verify`, an onnx whose files are laid out differently) the
names come from the imported onnx package. tests/test_onnx_light.py checks both modes agree.

`to_array` and `np_dtype` cover the numeric types ONNX constants use (what onnx.numpy_helper and
onnx.helper do for them, compared value for value in the tests) and defer to onnx for the rest
(strings, bfloat16, float8, 4-bit and 2-bit types, complex).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

_PROTOS = "onnx.onnx_ml_pb2"
_EXTENSION = "onnx.onnx_cpp2py_export"
_light_wanted = False
_protos: ModuleType | None = None
_extension: ModuleType | None = None


def use_light() -> None:
    """Load only onnx's protobuf module and C++ extension if onnx is not imported yet (the CLI's
    `check`, a process that ends with the check). Call before this module's names are read."""
    global _light_wanted
    _light_wanted = True


def _onnx_folder() -> str:
    spec = importlib.util.find_spec("onnx")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx is not installed")
    return list(spec.submodule_search_locations)[0]


def _load_file(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_extension() -> ModuleType:
    """onnx's C++ extension, loaded alone (the shape-inference helper process uses this too)."""
    if _EXTENSION in sys.modules:
        return sys.modules[_EXTENSION]
    folder = _onnx_folder()
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    names = [f for f in os.listdir(folder) if f.startswith("onnx_cpp2py_export") and f.endswith(suffixes)]
    if not names:
        raise ImportError("onnx's C++ extension was not found")
    return _load_file(_EXTENSION, os.path.join(folder, names[0]))


def _resolve() -> None:
    global _protos, _extension
    if _light_wanted and "onnx" not in sys.modules:
        try:
            protos = sys.modules.get(_PROTOS) or _load_file(_PROTOS, os.path.join(_onnx_folder(), "onnx_ml_pb2.py"))
            _extension, _protos = load_extension(), protos
            return
        except (ImportError, OSError):  # pragma: no cover - a different onnx layout: use the package
            pass
    onnx = full()
    _protos, _extension = onnx.onnx_ml_pb2, onnx.onnx_cpp2py_export


def full() -> ModuleType:
    """The onnx package, imported (reusing the modules a light load put in sys.modules)."""
    import onnx

    # An import system that finds a submodule already in sys.modules does not set it as an
    # attribute of its package; code reaching it as `onnx.onnx_ml_pb2` would fail without this.
    for name in (_PROTOS, _EXTENSION):
        short = name.rpartition(".")[2]
        if name in sys.modules and not hasattr(onnx, short):
            setattr(onnx, short, sys.modules[name])
    return onnx


def extension() -> ModuleType:
    if _extension is None:
        _resolve()
    return _extension  # type: ignore[return-value]


def __getattr__(name: str) -> object:
    # The protobuf classes (ModelProto, TensorProto, ...), resolved on first use.
    if not name.endswith("Proto"):
        raise AttributeError(name)
    if _protos is None:
        _resolve()
    value = getattr(_protos, name)
    globals()[name] = value
    return value


def infer_shapes(data: bytes, *, strict: bool) -> bytes:
    """ONNX shape inference of a serialized model, as onnx.shape_inference.infer_shapes does it with
    check_type=True (an input type outside its op's type constraints is an error: MOD501) and
    data_prop=False (see model/inference.py, _infer, for why data propagation stays off).
    Negative dims in the model's value types are made unknown first (without_negative_dims)."""
    if may_have_negative_dims(data):
        data = without_negative_dims(data)
    return extension().shape_inference.infer_shapes(data, True, strict, False)


# A field 1 varint holding a negative int64 (ten bytes, the last 0x01): how a negative `dim_value`
# (TensorShapeProto.Dimension field 1) reads in the wire format.
_NEGATIVE_FIELD_1 = None


def may_have_negative_dims(data: bytes) -> bool:
    """False when no field 1 of the serialized model holds a negative varint, so no dim of its value
    types is negative (~1 ms on 3 MB). True proves nothing (other messages' field 1)."""
    global _NEGATIVE_FIELD_1
    if _NEGATIVE_FIELD_1 is None:
        import re

        _NEGATIVE_FIELD_1 = re.compile(rb"\x08[\x80-\xff]{9}\x01")
    return _NEGATIVE_FIELD_1.search(data) is not None


def without_negative_dims(data: bytes) -> bytes:
    """`data` with every negative dim of a value type (graph inputs, outputs and value_info, in every
    graph and function) made unknown; `data` itself when there is none. onnx's inference asserts on
    some (a Slice reading a Shape annotated with dim -5 aborted the whole process: fuzz seed 2038,
    case 480); a negative dim means nothing (the views read one as unknown, _typeinfo.type_tuple)."""
    model = __getattr__("ModelProto").FromString(data)
    changed = False
    # (graph or function, whether it is a graph: a function's inputs and outputs are names only)
    stack = [(model.graph, True), *((f, False) for f in model.functions)]
    while stack:
        g, is_graph = stack.pop()
        for vi in [*g.input, *g.output, *g.value_info] if is_graph else g.value_info:
            changed |= _clear_negative_dims(vi.type)
        for node in g.node:
            for a in node.attribute:
                if a.type == 5:  # GRAPH
                    stack.append((a.g, True))
                elif a.type == 10:  # GRAPHS
                    stack.extend((b, True) for b in a.graphs)
    return model.SerializeToString() if changed else data


def _clear_negative_dims(tp) -> bool:
    which = tp.WhichOneof("value")
    if which in ("sequence_type", "optional_type"):
        return _clear_negative_dims(getattr(tp, which).elem_type)
    if which == "map_type":
        return _clear_negative_dims(tp.map_type.value_type)
    if which not in ("tensor_type", "sparse_tensor_type"):
        return False
    changed = False
    for d in getattr(tp, which).shape.dim:
        if d.WhichOneof("value") == "dim_value" and d.dim_value < 0:
            d.ClearField("dim_value")
            changed = True
    return changed


def get_schema(op_type: str, max_inclusive_version: int, domain: str = "") -> object:
    """onnx.defs.get_schema."""
    return extension().defs.get_schema(op_type, max_inclusive_version, domain)


# ONNX element type -> (numpy dtype name, repeated field holding the values when not in raw_data).
# Types stored as bit patterns in int32_data (FLOAT16, INT16, UINT16, BOOL) are decoded below.
_NUMERIC = {
    1: ("float32", "float_data"),
    2: ("uint8", "int32_data"),
    3: ("int8", "int32_data"),
    4: ("uint16", "int32_data"),
    5: ("int16", "int32_data"),
    6: ("int32", "int32_data"),
    7: ("int64", "int64_data"),
    9: ("bool", "int32_data"),
    10: ("float16", "int32_data"),
    11: ("float64", "double_data"),
    12: ("uint32", "uint64_data"),
    13: ("uint64", "uint64_data"),
}
# numpy type of each repeated field's values
_STORAGE = {"float_data": "float32", "int32_data": "int32", "int64_data": "int64", "double_data": "float64",
            "uint64_data": "uint64"}


def np_dtype(elem_type: int) -> object:
    """onnx.helper.tensor_dtype_to_np_dtype."""
    import numpy as np

    entry = _NUMERIC.get(elem_type)
    if entry is None:
        return full().helper.tensor_dtype_to_np_dtype(elem_type)
    return np.dtype(entry[0])


def to_array(t) -> object:  # t: a TensorProto
    """onnx.numpy_helper.to_array for a tensor with its data inline."""
    import numpy as np

    entry = _NUMERIC.get(t.data_type)
    if entry is None or t.HasField("segment") or t.data_location == 1:  # 1: TensorProto.EXTERNAL
        return full().numpy_helper.to_array(t)
    dtype = np.dtype(entry[0])
    dims = tuple(t.dims)
    if t.HasField("raw_data"):
        return np.frombuffer(t.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(dims)
    values = getattr(t, entry[1])
    if t.data_type in (4, 5, 9, 10):  # 16-bit and bool values: bit patterns in int32_data
        bits = np.array(values, dtype=np.int32).view(np.uint32)
        return bits.astype(np.uint8 if dtype.itemsize == 1 else np.uint16).view(dtype).reshape(dims)
    return np.asarray(values, dtype=_STORAGE[entry[1]]).astype(dtype).reshape(dims)
