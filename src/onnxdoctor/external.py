"""External data: every tensor a model holds, wherever it hides, and its external-data reference
validated in one place before any byte is read.

Tensors hide in initializers, sparse initializers (values and indices), tensor attributes (`t`,
`tensors`, `sparse_tensor`, `sparse_tensors`: Constant and custom ops) of every node of the main
graph, of control-flow bodies at any depth and of local function bodies. `tensors()` walks them all;
`parse_ref` and `resolve` turn a reference into a file and a byte range or say, in one line, why it
is refused (no location, a NUL byte, an absolute path, `..` or a symlink out of the model's folder, a
symlink loop, a name too long, a negative or non-numeric offset or length, a file that is not a
regular file) or missing (no such file, too short). `read` reads exactly the validated bytes.

Imports neither onnx's Python package nor numpy: `check` uses it.
"""

from __future__ import annotations

import errno
import functools
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from ._onnx import AttributeProto, ModelProto, TensorProto
from ._onnx_ops import PLAIN_STANDARD_OPS
from ._typeinfo import GRAPH_ATTR_OPS

EXTERNAL = TensorProto.EXTERNAL
_TENSOR, _TENSORS = AttributeProto.TENSOR, AttributeProto.TENSORS
_SPARSE, _SPARSES = AttributeProto.SPARSE_TENSOR, AttributeProto.SPARSE_TENSORS
_GRAPH, _GRAPHS = AttributeProto.GRAPH, AttributeProto.GRAPHS
TENSOR_OR_GRAPH_ATTR_OPS = GRAPH_ATTR_OPS | {"Constant", "ConstantOfShape"}

# bytes per element of the types stored in raw_data
FIXED_SIZES = {
    TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2, TensorProto.INT16: 2,
    TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1, TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8,
    TensorProto.UINT32: 4, TensorProto.UINT64: 8, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
    TensorProto.BFLOAT16: 2, TensorProto.FLOAT8E4M3FN: 1, TensorProto.FLOAT8E4M3FNUZ: 1, TensorProto.FLOAT8E5M2: 1,
    TensorProto.FLOAT8E5M2FNUZ: 1, TensorProto.UINT4: 0.5, TensorProto.INT4: 0.5,
}
for _name, _size in (("FLOAT4E2M1", 0.5), ("FLOAT8E8M0", 1), ("UINT2", 0.25), ("INT2", 0.25)):
    if hasattr(TensorProto, _name):  # newer onnx releases
        FIXED_SIZES[getattr(TensorProto, _name)] = _size

# A location longer than this (bytes) is refused before the file system is asked.
MAX_LOCATION_BYTES = 4096
MAX_NAME_BYTES = 255


def text(value: str | bytes) -> str:
    """A protobuf string field as text. Python's protobuf returns the raw bytes of a string field
    that is not valid UTF-8 (ONNX's schema is proto2): decode them leniently."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=None)
def may_hold_tensors(op_type: str, domain: str) -> bool:
    """Whether a node can carry tensor or graph attributes: ops of other domains and unknown ops may;
    a standard op only if its schema declares such an attribute (Constant, ConstantOfShape, If...).
    Skips the attribute walk for the thousands of nodes that cannot."""
    if domain not in ("", "ai.onnx") or op_type in TENSOR_OR_GRAPH_ATTR_OPS:
        return True
    return op_type not in PLAIN_STANDARD_OPS


def _node_label(node, i: int) -> str:
    return text(node.name) or f"{text(node.op_type)}#{i}"


MAIN_GRAPH = "the main graph"  # the `where` of the main graph's tensors


def tensors(model: ModelProto, max_depth: int = 64,
            main_nodes: tuple[Sequence, Iterable[int]] | None = None) -> Iterator[tuple[str, TensorProto, int]]:
    """(where, tensor, depth) for every TensorProto of the model: see the module docstring. `where`
    names the graph ("the main graph", "subgraph NODE/ATTR", "function NAME"); depth 0 is the main
    graph. Raises RecursionError past `max_depth` nested graphs. `main_nodes`: (the main graph's
    nodes, the indices, in order, of those that may hold tensors: may_hold_tensors), when the
    caller has them at hand: the other nodes' op types are then not read again."""
    stack: list[tuple[object, str, int, bool]] = [(model.graph, MAIN_GRAPH, 0, False)]
    stack.extend((f, f"function {text(f.name)}", 1, True) for f in reversed(model.functions))
    while stack:
        graph, where, depth, is_function = stack.pop()
        if depth > max_depth:
            raise RecursionError(where)
        if not is_function:
            for t in graph.initializer:
                yield where, t, depth
            for st in graph.sparse_initializer:
                yield where, st.values, depth
                yield where, st.indices, depth
        subgraphs = []
        if depth == 0 and not is_function and main_nodes is not None:
            listed, indices = main_nodes
            candidates: Iterable = ((i, listed[i]) for i in indices)
        else:
            candidates = ((i, node) for i, node in enumerate(graph.node) if may_hold_tensors(node.op_type, node.domain))
        for i, node in candidates:
            for a in node.attribute[:]:  # [:]: one C call, not an iteration
                kind = a.type
                if kind == _TENSOR:
                    yield where, a.t, depth
                elif kind == _TENSORS:
                    for t in a.tensors:
                        yield where, t, depth
                elif kind == _SPARSE:
                    yield where, a.sparse_tensor.values, depth
                    yield where, a.sparse_tensor.indices, depth
                elif kind == _SPARSES:
                    for st in a.sparse_tensors:
                        yield where, st.values, depth
                        yield where, st.indices, depth
                elif kind in (_GRAPH, _GRAPHS):
                    subs = [a.g] if kind == _GRAPH else list(a.graphs)
                    for sub in subs:
                        subgraphs.append((sub, f"subgraph {_node_label(node, i)}/{text(a.name)}", depth + 1, False))
        stack.extend(reversed(subgraphs))


def external_tensors(model: ModelProto) -> Iterator[tuple[str, TensorProto]]:
    """(where, tensor) of every tensor whose data is external."""
    for where, t, _ in tensors(model):
        if t.data_location == EXTERNAL:
            yield where, t


class Ref(NamedTuple):
    """A validated external-data reference: `location` relative to the model's folder, the byte
    range (`length` None: not given, the tensor's size decides)."""

    tensor: str
    location: str
    offset: int
    length: int | None


class RefError(ValueError):
    """An external-data reference that is refused (one line, no file name: the caller adds it)."""


def expected_bytes(t: TensorProto) -> int | None:
    """Bytes the tensor's dims and type need, or None when the type has no fixed size."""
    size = FIXED_SIZES.get(t.data_type)
    if size is None:
        return None
    return math.ceil(math.prod(t.dims) * size)


def parse_ref(t: TensorProto) -> Ref:
    """The tensor's external-data entries, validated as text. Raises RefError."""
    name = t.name
    if type(name) is not str:
        name = text(name)
    # The first entry of each key counts. Read in one pass without a dict: a model holds thousands.
    loc = offset = length = None
    for e in t.external_data:
        key, value = e.key, e.value
        # protobuf gives bytes for a string field that is not valid UTF-8
        if type(key) is not str or type(value) is not str:
            raise RefError(f"external data of {name!r} has an entry that is not valid UTF-8")
        if key == "location":
            if loc is None:
                loc = value
        elif key == "offset":
            if offset is None:
                offset = value
        elif key == "length" and length is None:
            length = value
    if not loc:
        raise RefError(f"{name!r} is marked external but names no location")
    if len(loc) > MAX_LOCATION_BYTES or not _location_ok(loc):
        _check_location(name, loc)  # raises, naming the tensor
    return Ref(name, loc, _number(name, "offset", offset) or 0 if offset else 0,
               _number(name, "length", length) if length else None)


def _number(name: str, key: str, raw: str) -> int:
    """A non-empty offset or length entry as a number (up to 20 digits, blanks around allowed)."""
    if raw.isdigit() and raw.isascii() and len(raw) <= 20:  # the common case, without strip()
        return int(raw)
    digits = raw.strip()
    if not (digits.isdigit() and digits.isascii() and len(digits) <= 20):
        what = "negative" if digits.startswith("-") else "not a number"
        raise RefError(f"external data of {name!r}: {key} {raw[:40]!r} is {what}; refused")
    return int(digits)


@functools.lru_cache(maxsize=256)
def _location_ok(loc: str) -> bool:
    """Whether `loc` passes _check_location: thousands of tensors usually share one data file, so
    each location is checked once (a refused one is checked again to name its tensor)."""
    try:
        _check_location("", loc)
    except RefError:
        return False
    return True


def _check_location(name: str, loc: str) -> None:
    """Raises RefError when `loc` cannot be a data file inside the model's folder (as text: no file
    system access)."""
    if "\0" in loc:
        raise RefError(f"external data of {name!r}: the location contains a NUL byte; refused")
    encoded = os.fsencode(loc) if _encodable(loc) else None
    if encoded is None:
        raise RefError(f"external data of {name!r}: the location {loc[:80]!r} cannot be a file name here; refused")
    if len(encoded) > MAX_LOCATION_BYTES or any(len(part) > MAX_NAME_BYTES for part in re.split(rb"[\\/]", encoded)):
        raise RefError(f"external data of {name!r}: the location is too long ({len(encoded)} bytes); refused")
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or (len(loc) > 1 and loc[1] == ":"):
        raise RefError(f"external data of {name!r} points to an absolute path {loc[:200]!r}; refused (must be inside the model's folder)")


def _encodable(s: str) -> bool:
    try:
        os.fsencode(s)
    except UnicodeError:
        return False
    return True


class Resolved(NamedTuple):
    path: str  # the file to read (inside the model's folder)
    size: int | None  # None: missing


def resolve(base_dir: str, ref: Ref) -> Resolved:
    """The data file of `ref` inside `base_dir` (a resolved folder) and its size (None: missing).
    Raises RefError when the location leaves the folder (`..`, a symlink), loops, or is not a regular file."""
    name = ref.tensor
    joined = os.path.join(base_dir, ref.location)
    try:
        real = os.path.realpath(joined, strict=True)
    except FileNotFoundError:
        real = os.path.realpath(joined)
        if not _inside(base_dir, real):
            raise RefError(f"external data of {name!r} points outside the model's folder ({ref.location[:200]!r}); refused") from None
        return Resolved(joined, None)
    except NotADirectoryError:
        return Resolved(joined, None)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RefError(f"external data of {name!r}: {ref.location[:200]!r} is a symlink loop; refused") from None
        if e.errno == errno.ENAMETOOLONG:
            raise RefError(f"external data of {name!r}: the location is too long; refused") from None
        raise RefError(f"external data of {name!r}: {ref.location[:200]!r}: {e.strerror or e}") from None
    if not _inside(base_dir, real):
        raise RefError(f"external data of {name!r} points outside the model's folder ({ref.location[:200]!r}); refused")
    try:
        st = os.stat(real)
    except OSError as e:
        raise RefError(f"external data of {name!r}: {ref.location[:200]!r}: {e.strerror or e}") from None
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        raise RefError(f"external data of {name!r}: {ref.location[:200]!r} is not a regular file; refused")
    return Resolved(real, st.st_size)


def _inside(base_dir: str, path: str) -> bool:
    try:
        return os.path.commonpath([base_dir, path]) == base_dir and path != base_dir
    except ValueError:  # different drives
        return False


def range_problem(ref: Ref, size: int, expected: int | None) -> str | None:
    """Why the file of `size` bytes cannot hold the tensor's bytes, or None."""
    need = ref.length if ref.length is not None else expected
    if ref.offset > size:
        return f"external data file {ref.location!r} is {size} bytes, too short for offset {ref.offset}"
    if need is not None and ref.offset + need > size:
        what = f"length {ref.length}" if ref.length is not None else f"the {need} bytes its dims need"
        return f"external data file {ref.location!r} is {size} bytes, too short for offset {ref.offset} + {what}"
    if expected is not None and ref.length is not None and ref.length != expected:
        return f"external data of {ref.tensor!r} has length {ref.length} but its dims need {expected} bytes"
    return None


def read(path: str, offset: int, length: int) -> bytes:
    """Exactly `length` bytes at `offset` of `path`. Raises OSError (EIO when the file is shorter)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        parts = []
        while length > 0:
            chunk = os.pread(fd, min(length, 1 << 30), offset) if hasattr(os, "pread") else _seek_read(fd, offset, length)
            if not chunk:
                raise OSError(errno.EIO, "the file ended early")
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _seek_read(fd: int, offset: int, length: int) -> bytes:  # pragma: no cover - Windows
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, min(length, 1 << 30))
