"""Big inline weights left out of a serialized model, at the protobuf wire level.

A model exported with its weights inline (torch.onnx.export under 2 GB) is mostly `raw_data`: a
500 MB file is 500 MB of weights around a few MB of graph. Parsing it copies every weight into the
protobuf message; ONNX shape inference parses it again, then serializes it back. `check` needs the
weights' types and shapes, not their bytes, so `split` rewrites the serialized model without the
`raw_data` of the main graph's big initializers, reading only the bytes around them (FileView: the
weights are never read, and nothing is mapped into memory), and returns where each left-out
`raw_data` lies in the file, for the rules that read weights (model.LazyBytes: constant values,
duplicates, masks).

Shape inference of the result gives the same types: ONNX reads initializer values only for inputs
that are shapes, axes, pads, counts and the like, and a value of RAW_MIN_BYTES (64 KiB: 8,192 int64
values) or more is never one. Anything unusual on the wire (a group, a repeated `graph` field, a
truncated field) returns None: the caller parses the whole file as before. Imports nothing beyond
the standard library (the helper process uses it).
"""

from __future__ import annotations

import os
import weakref

RAW_MIN_BYTES = 1 << 16  # raw_data of at least this many bytes is left out
# Files smaller than this are parsed whole: the wire scan would save less than it costs.
MIN_FILE_BYTES = 8 << 20

# Field numbers (onnx.proto): ModelProto.graph, GraphProto.initializer, TensorProto.name/raw_data.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_NAME, _TENSOR_RAW_DATA = 7, 5, 8, 9
_LEN = 2  # wire type of length-delimited fields


class _Unsupported(Exception):
    pass


def _varint(buf, pos: int) -> tuple[int, int]:
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result, shift = b & 0x7F, 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos + 1
        shift += 7
        if shift > 63:
            raise _Unsupported("varint too long")


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _fields(buf, pos: int, end: int):
    """(field number, wire type, field start, value start, field end) of each field in [pos, end)."""
    while pos < end:
        start = pos
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _LEN:
            n, pos = _varint(buf, pos)
            value = pos
            pos += n
        elif wire == 0:
            value = pos
            _, pos = _varint(buf, pos)
        elif wire == 1:
            value = pos
            pos += 8
        elif wire == 5:
            value = pos
            pos += 4
        else:  # groups (deprecated) or garbage
            raise _Unsupported(f"wire type {wire}")
        if pos > end:
            raise _Unsupported("truncated field")
        yield field, wire, start, value, pos


def _split_tensor(buf, start: int, end: int, min_bytes: int) -> tuple[bytes, str, int, int] | None:
    """The tensor message in [start, end) without a raw_data of at least `min_bytes`:
    (its bytes, its name, the raw_data's offset and length), or None when it has none."""
    name = ""
    raw = None
    for field, wire, fstart, value, fend in _fields(buf, start, end):
        if wire != _LEN:
            continue
        if field == _TENSOR_NAME:
            name = bytes(buf[value:fend]).decode("utf-8", "replace")
        elif field == _TENSOR_RAW_DATA:
            if raw is not None:
                raise _Unsupported("raw_data twice")
            raw = (fstart, value, fend)
    if raw is None or raw[2] - raw[1] < min_bytes:
        return None
    fstart, value, fend = raw
    return bytes(buf[start:fstart]) + bytes(buf[fend:end]), name, value, fend - value


class FileView:
    """A file's bytes by index and slice, read with pread (seek + read where there is none) in small
    windows: bytes never asked for are never read, and none count in the process's memory."""

    WINDOW = 8192

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._base = 0
        self._block = b""
        self._close = weakref.finalize(self, os.close, fd)

    @classmethod
    def open(cls, path: str | os.PathLike) -> FileView:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            return cls(fd, os.fstat(fd).st_size)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        self._close()

    def __len__(self) -> int:
        return self.size

    def read(self, offset: int, n: int) -> bytes:
        parts = []
        while n > 0:
            if hasattr(os, "pread"):
                chunk = os.pread(self.fd, n, offset)
            else:  # pragma: no cover - Windows
                os.lseek(self.fd, offset, os.SEEK_SET)
                chunk = os.read(self.fd, n)
            if not chunk:
                raise IndexError("past the end of the file")
            parts.append(chunk)
            offset += len(chunk)
            n -= len(chunk)
        return b"".join(parts)

    def __getitem__(self, key):
        if isinstance(key, slice):
            start = key.start or 0
            stop = self.size if key.stop is None else min(key.stop, self.size)
            return self.read(start, stop - start) if stop > start else b""
        i = key - self._base
        if 0 <= i < len(self._block):
            return self._block[i]
        if not 0 <= key < self.size:
            raise IndexError(key)
        self._base = key
        self._block = self.read(key, min(self.WINDOW, self.size - key))
        return self._block[0]


def _length_prefixed(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | _LEN) + _encode_varint(len(payload)) + payload


def split(buf, min_bytes: int | None = None) -> tuple[bytes, dict[str, tuple[int, int]]] | None:
    """`buf` (a serialized ModelProto: bytes or a FileView) without the raw_data of the main graph's
    initializers of at least `min_bytes` (default RAW_MIN_BYTES), and {initializer name: (offset,
    length)} of each left-out raw_data in `buf`. None when nothing is left out or the wire format is
    unusual (the file cannot be read: OSError)."""
    min_bytes = RAW_MIN_BYTES if min_bytes is None else min_bytes
    try:
        if isinstance(buf, FileView):
            return _split(buf, min_bytes)
        with memoryview(buf) as view:
            return _split(view, min_bytes)
    except (_Unsupported, IndexError):
        return None


def _split(buf: memoryview, min_bytes: int):
    graph = None
    for field, wire, start, value, end in _fields(buf, 0, len(buf)):
        if field == _MODEL_GRAPH:
            if graph is not None or wire != _LEN:
                raise _Unsupported("graph field repeated")  # parsers merge repeats; not worth it here
            graph = (start, value, end)
    if graph is None:
        return None
    gstart, gvalue, gend = graph
    parts: list[bytes] = []
    left_out: dict[str, tuple[int, int]] = {}
    copied = gvalue  # graph bytes before this position are in `parts`
    for field, wire, start, value, end in _fields(buf, gvalue, gend):
        if field != _GRAPH_INITIALIZER or wire != _LEN or end - value < min_bytes:
            continue
        hit = _split_tensor(buf, value, end, min_bytes)
        if hit is None:
            continue
        tensor, name, offset, length = hit
        parts.append(bytes(buf[copied:start]))
        parts.append(_length_prefixed(_GRAPH_INITIALIZER, tensor))
        copied = end
        left_out[name] = (offset, length)
    if not left_out:
        return None
    parts.append(bytes(buf[copied:gend]))
    graph_bytes = b"".join(parts)
    model = bytes(buf[:gstart]) + _length_prefixed(_MODEL_GRAPH, graph_bytes) + bytes(buf[gend:])
    return model, left_out


def read_model(path: str | os.PathLike) -> tuple[bytes, dict[str, tuple[int, int]], FileView | None]:
    """A model file's bytes for analysis: a file of MIN_FILE_BYTES or more without its big inline
    weights (`split`), with where they lie and the open FileView to read them from (None when
    nothing was left out: the file is read whole and closed). Raises OSError."""
    if os.path.getsize(path) < MIN_FILE_BYTES:
        with open(path, "rb") as fh:
            return fh.read(), {}, None
    view = FileView.open(path)
    try:
        done = split(view)
        if done is not None:
            return done[0], done[1], view
        data = view[0:len(view)]
    except BaseException:
        view.close()
        raise
    view.close()
    return data, {}, None
