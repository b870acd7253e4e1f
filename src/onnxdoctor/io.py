"""The one write path: every file onnxdoctor writes (models, external data, reports, baselines).

- Never onto an input. `Inputs` holds the files a command reads (the model, its external-data files,
  --data, --baseline, --config, the --against model); an output that is one of them, by path (after
  `..` and symlinks) or by identity (st_dev/st_ino: a hard link), is refused before anything is
  written. Only `--in-place` may replace the input model itself.
- Atomic. Everything is written under a temporary name in the output's folder, flushed to disk, and
  moved into place with one rename. A model with external data is a pair: the new data file gets a
  name no file has (`OUT.data`, else `OUT.1.data`, ...), then the model rename is the single commit
  point, then the data file the old model used is removed. At every moment the folder holds either
  the old pair or the new pair.
- Temporaries are named `.NAME.onnxdoctor-tmp.PID.XXXX` and removed on failure. Writers lock the
  output's folder (flock) while they write, so concurrent writers take turns, and a writer removes the
  temporaries a killed one left (see `_clean_stale`).
- Every I/O error is one line naming the file (`WriteError`, exit 2).

Fault injection for tests: `_ONNXDOCTOR_TEST_FAULT=STEP:ACTION` (steps: data-written, model-written,
data-renamed, committed; actions: kill, enospc, eio) stops a write at that step.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import stat
from pathlib import Path

from .errors import OnnxDoctorError, UsageError

# Above this the protobuf cannot be serialized as one message: weights go to external data.
PROTOBUF_SAFE_BYTES = 2**31 - 2**26
# Tensors of at least this many bytes go to the external data file.
EXTERNAL_MIN_BYTES = 1024
TMP_MARK = ".onnxdoctor-tmp."
_FAULT_ENV = "_ONNXDOCTOR_TEST_FAULT"


class WriteError(OnnxDoctorError):
    """An output cannot be written (I/O error): one line, exit 2."""


# ----------------------------------------------------------------------------------------------
# Inputs: what must never be written
# ----------------------------------------------------------------------------------------------
class Inputs:
    """The files a command reads. Compared by (st_dev, st_ino) where they exist, by resolved path
    otherwise (a missing external-data file is still the input's)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, int], str] = {}
        self._paths: dict[str, str] = {}
        self.models: list[str] = []  # resolved paths of the input models

    def add(self, path: str | os.PathLike, what: str) -> None:
        real = _real(path)
        if real is None:
            return
        self._paths.setdefault(real, what)
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            return
        if stat.S_ISREG(st.st_mode):
            self._ids.setdefault((st.st_dev, st.st_ino), what)

    def add_model(self, path: str | os.PathLike, data_files=(), *, what: str = "the input model") -> None:
        """A model file and its external-data files (paths as resolved at load time)."""
        self.add(path, what)
        real = _real(path)
        if real is not None:
            self.models.append(real)
        for f in data_files:
            self.add(f, f"external data of {what} {Path(path).name}")

    def find(self, path: str | os.PathLike) -> str | None:
        """What `path` is, if it is one of the inputs."""
        real = _real(path)
        if real is None:
            return None
        hit = self._paths.get(real)
        if hit is not None:
            return hit
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            return None
        return self._ids.get((st.st_dev, st.st_ino))

    def is_model(self, path: str | os.PathLike) -> bool:
        real = _real(path)
        return real is not None and real in self.models


def _real(path: str | os.PathLike) -> str | None:
    try:
        return os.path.realpath(os.fspath(path))
    except (OSError, ValueError):  # embedded NUL byte, symlink trouble
        return None


def target(path: str | os.PathLike, inputs: Inputs, *, option: str = "-o", in_place: bool = False,
           hint: str = "") -> Path:
    """Where an output named `path` goes (symlinks followed), refused when it is an input (except the
    input model itself under `in_place`), a folder, or in a folder that does not exist. Raises
    UsageError; writes nothing."""
    shown = os.fspath(path)
    if "\0" in shown:
        raise UsageError(f"{option} {shown!r}: a file name cannot contain a NUL byte")
    real = _real(path)
    if real is None:
        raise UsageError(f"{option} {shown}: not a usable path")
    out = Path(real)
    what = inputs.find(out)
    if what is not None and not (in_place and inputs.is_model(out)):
        extra = f"; {hint}" if hint and what == "the input model" else ""
        raise UsageError(f"{option} {shown} is {what}; refused (an input is never overwritten){extra}")
    if out.is_dir():
        raise UsageError(f"{option} {shown} is a directory")
    if not out.parent.is_dir():
        raise UsageError(f"{option} {shown}: folder {Path(shown).parent} does not exist")
    return out


def distinct(*outputs: tuple[str, str | os.PathLike | None]) -> None:
    """Refuse two outputs (option, path) that are the same file."""
    seen: dict[str, str] = {}
    for option, path in outputs:
        if path is None:
            continue
        real = _real(path) or os.fspath(path)
        if real in seen:
            raise UsageError(f"{seen[real]} and {option} name the same file {os.fspath(path)}; give them different files")
        seen[real] = option


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def write_text(path: str | os.PathLike, content: str, inputs: Inputs, *, option: str = "-o") -> Path:
    """Write a report (or baseline) atomically. Raises UsageError / WriteError."""
    out = target(path, inputs, option=option)
    data = content.encode("utf-8")
    with _Folder(out, os.fspath(path)) as folder:
        tmp = folder.temp_file()
        folder.write_file(tmp, [data])
        folder.replace(tmp, out)
    return out


def save_model(model, path: str | os.PathLike, inputs: Inputs, *, external: bool, in_place: bool = False,
               weights=None) -> list[str]:
    """Write `model` (an onnx.ModelProto whose weights are loaded, or stubs into `weights`, a
    weights.WeightStore) to `path`. With `external` (the input had external data) or when the model
    is too big for one protobuf, tensors of EXTERNAL_MIN_BYTES or more go to a data file beside it,
    written from where they lie (the store's arrays are not copied). Returns the files written, as
    the caller named them.
    See the module docstring for the guarantees. Raises UsageError / WriteError."""
    shown = os.fspath(path)
    out = target(path, inputs, in_place=in_place)
    with _Folder(out, shown) as folder:
        old_data = _data_files_of(out) if out.exists() else []
        stored = weights.nbytes(model) if weights is not None else 0
        use_external = external or (stored + model.ByteSize() > PROTOBUF_SAFE_BYTES if stored else _too_big(model))
        data_name = _fresh_data_name(out) if use_external else None
        if stored and data_name is None:  # one file: the stored weights are written from the store
            model_chunks, chunks = _serialize_from_store(model, weights), []
        else:
            model_bytes, chunks = _serialize(model, data_name, shown, weights if stored else None)
            model_chunks = [model_bytes]
        tmp_data = None
        if chunks:
            tmp_data = folder.temp_file()
            folder.write_file(tmp_data, chunks)
            _fault("data-written")
        tmp_model = folder.temp_file()
        folder.write_file(tmp_model, model_chunks)
        _fault("model-written")
        written = [out]
        shown_written = [shown]
        if tmp_data is not None:
            data_path = out.parent / data_name
            folder.place_new(tmp_data, data_path)
            written.append(data_path)
            beside = os.path.join(os.path.dirname(shown), data_name)
            shown_written.append(beside if _real(beside) == str(data_path) else str(data_path))
            _fault("data-renamed")
        folder.replace(tmp_model, out)  # the commit point
        folder.committed = True
        _fault("committed")
        folder.sync()
        for old in old_data:
            if old in written:
                continue
            # --in-place: the old data files are the input model's own, which the user asked to replace.
            # Otherwise: never an input's, and only files named as onnxdoctor names them (a file of
            # another name may be shared with another model).
            if not in_place and (inputs.find(old) is not None or not _ours(out, old)):
                continue
            try:
                old.unlink()
            except OSError:
                pass  # the new pair is in place; a leftover old data file loses nothing
    return shown_written


def _too_big(model) -> bool:
    estimate = _estimated_bytes(model)
    if estimate is not None and estimate < PROTOBUF_SAFE_BYTES // 2:
        return False  # far below the limit: no need to size it exactly (ByteSize costs a serialization)
    try:
        return model.ByteSize() > PROTOBUF_SAFE_BYTES
    except Exception:  # noqa: BLE001 - protobuf refuses to size some huge messages
        return True


# bytes per element of the numeric tensor types (sub-byte types rounded up)
_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}


def _estimated_bytes(model) -> int | None:
    """An over-estimate of the serialized size from the tensors' dims and types and 4 KiB per node,
    without serializing anything; None when a tensor's size cannot be told that way (strings)."""
    from ._proto import graphs

    total = 0
    for g in graphs(model.graph):
        if len(g.sparse_initializer):
            return None
        tensors = list(g.initializer)
        for n in g.node:
            total += 4096
            for a in n.attribute:
                if a.tensors or a.HasField("sparse_tensor") or a.sparse_tensors:
                    return None
                if a.HasField("t"):
                    tensors.append(a.t)
        for t in tensors:
            size = _ITEMSIZE.get(t.data_type)
            if size is None:
                return None
            count = 1
            for d in t.dims:
                count *= d
            # typed fields hold varints: up to 10 bytes an element
            total += count * (size if t.HasField("raw_data") else 10) + 4096
    for f in model.functions:
        total += 4096 * len(f.node) + f.ByteSize()
    return total


def _data_pattern(out: Path) -> re.Pattern:
    return re.compile(re.escape(out.name) + r"(\.[0-9]{1,6})?\.data")


def _ours(out: Path, data: Path) -> bool:
    """Whether `data` is a data-file name onnxdoctor gives the model `out` (OUT.data, OUT.N.data)."""
    return data.parent == out.parent and _data_pattern(out).fullmatch(data.name) is not None


def _fresh_data_name(out: Path) -> str:
    """OUT.data if no such file exists, else OUT.1.data, OUT.2.data...: never an existing file."""
    for k in range(0, 1000000):
        name = f"{out.name}.data" if k == 0 else f"{out.name}.{k}.data"
        if not os.path.lexists(out.parent / name):
            return name
    raise WriteError(f"{out}: no free name for its data file")  # pragma: no cover


def _data_files_of(out: Path) -> list[Path]:
    """The external-data files the model now at `out` uses (resolved, inside its folder); [] when it
    is unreadable or has none."""
    from . import _wire, external
    from ._onnx import ModelProto

    try:
        data, _, view = _wire.read_model(out)
        if view is not None:
            view.close()
        proto = ModelProto()
        proto.ParseFromString(data)
        files = set()
        base = os.path.realpath(out.parent)
        for _, t in external.external_tensors(proto):
            try:
                res = external.resolve(base, external.parse_ref(t))
            except external.RefError:
                continue
            if res.size is not None:
                files.add(Path(res.path))
        return sorted(files)
    except Exception:  # noqa: BLE001 - an unreadable old output has no data files we may remove
        return []


def _serialize(model, data_name: str | None, shown: str, weights=None) -> tuple[bytes, list]:
    """The model's bytes and the data file's chunks. With `data_name`, every tensor of at least
    EXTERNAL_MIN_BYTES of the main graph's initializers (and of its other tensors, through onnx) is
    written to the data file, 4 KiB aligned, and replaced by a reference; the caller's model is left
    as it was. A tensor that is not in `weights` is a chunk that gives its bytes when they are
    written: protobuf hands out a copy of a tensor's bytes at each read, and holding every copy at
    once would double the weights in memory (2.2 GB more for 2.2 GB of weights)."""
    if data_name is None:
        return model.SerializeToString(), []
    from ._onnx import TensorProto

    chunks: list = []
    offset = 0
    stubs = []
    for t in model.graph.initializer:
        view = weights.checked_raw_view(t) if weights is not None else None  # stored: over weights.MIN_BYTES
        raw = view if view is not None else _raw_bytes(t)
        if raw is None or len(raw) < EXTERNAL_MIN_BYTES:
            stubs.append(t)
            continue
        size = len(raw)
        # a store's view is written as it lies; protobuf's copy is dropped and read again when written
        # (_Folder.write_file): one tensor's copy at a time
        chunk = view if view is not None else functools.partial(_exact_bytes, t, size)
        del raw
        pad = -offset % 4096
        if pad:
            chunks.append(b"\0" * pad)
            offset += pad
        stub = TensorProto()
        stub.name, stub.data_type = t.name, t.data_type
        stub.dims.extend(t.dims)
        if t.doc_string:
            stub.doc_string = t.doc_string
        for key, value in (("location", data_name), ("offset", str(offset)), ("length", str(size))):
            entry = stub.external_data.add()
            entry.key, entry.value = key, value
        stub.data_location = TensorProto.EXTERNAL
        chunks.append(chunk)
        offset += size
        stubs.append(stub)
    # A copy without the initializers, then the stubs (and the small tensors): swapping the stubs into
    # the caller's model and back would copy every weight into its protobuf arena again.
    from .weights import copy_without_initializers

    shell = copy_without_initializers(model)
    shell.graph.initializer.extend(stubs)
    data = shell.SerializeToString()
    del shell
    if len(data) > PROTOBUF_SAFE_BYTES:
        raise WriteError(f"{shown}: cannot write: the model is over 2 GB even with its initializers in external data "
                         "(big tensors in attributes or subgraphs); cannot write it")
    return data, chunks


def _exact_bytes(t, size: int) -> bytes:
    raw = _raw_bytes(t)
    if raw is None or len(raw) != size:  # the model changed between sizing and writing: never write a wrong file
        raise OSError(errno.EIO, f"tensor {t.name!r} changed while the model was being written")
    return raw


def _serialize_from_store(model, weights) -> list:
    """The serialization of weights.materialize(model), as chunks whose stored tensors' bytes are
    views of the store: neither the materialized model nor its serialized bytes exist at once (two
    model sizes off the peak of writing one file). The graph's initializers come after its other
    fields, and each stored tensor's raw_data after its other fields: protobuf parses fields in any
    order, so the file parses to the same model."""
    from ._onnx import GraphProto, ModelProto, TensorProto
    from ._proto import copy_fields

    graph_field = ModelProto.DESCRIPTOR.fields_by_name["graph"].number
    init_field = GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
    raw_field = TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number
    graph = model.graph
    inits: list = []
    for t in graph.initializer:
        raw = weights.checked_raw_view(t)
        if raw is None:
            body = [t.SerializeToString()]
        else:  # as materialize makes it: no external_data, data_location DEFAULT, raw_data
            head = TensorProto()
            head.CopyFrom(t)
            del head.external_data[:]
            head.data_location = TensorProto.DEFAULT
            body = [head.SerializeToString(), _tag(raw_field) + _varint(len(raw)), raw]
        inits += [_tag(init_field) + _varint(sum(len(b) for b in body)), *body]
    held = list(graph.initializer)
    del graph.initializer[:]
    try:
        rest = graph.SerializeToString()
    finally:
        graph.initializer.extend(held)
    outer = ModelProto()
    copy_fields(model, outer, skip="graph")
    graph_len = len(rest) + sum(len(c) for c in inits)
    return [outer.SerializeToString(), _tag(graph_field) + _varint(graph_len), rest, *inits]


def _tag(field: int) -> bytes:
    return _varint(field << 3 | 2)  # a length-delimited field


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _raw_bytes(t) -> bytes | None:
    from ._onnx import TensorProto

    if t.data_location == TensorProto.EXTERNAL:  # a stub (weights not loaded): stays as it is
        return None
    if t.HasField("raw_data"):
        return t.raw_data
    from onnx import numpy_helper

    try:
        arr = numpy_helper.to_array(t)
    except Exception:  # noqa: BLE001 - strings and odd types stay inline
        return None
    if arr.dtype == object:
        return None
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


# ----------------------------------------------------------------------------------------------
# The folder: locking, temporaries, renames, errors
# ----------------------------------------------------------------------------------------------
class _Folder:
    """The output's folder while writing: locked, with this write's temporaries, every OSError turned
    into one WriteError line naming `shown`."""

    def __init__(self, out: Path, shown: str) -> None:
        self.out = out
        self.dir = out.parent
        self.shown = shown
        self.temps: list[Path] = []
        self.placed: list[Path] = []  # new files already under their final name: removed unless committed
        self.fd: int | None = None
        self.locked = False
        self.committed = False

    def __enter__(self) -> _Folder:
        try:
            self.fd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as e:
            raise self.error(e) from None
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.locked = True
        except (ImportError, OSError):
            pass  # no locks here (Windows, some network file systems): writers do not take turns
        _clean_stale(self.dir, self.locked)
        return self

    def __exit__(self, kind, value, tb) -> None:
        for t in self.temps + ([] if self.committed else self.placed):
            try:
                t.unlink()
            except OSError:
                pass
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
        if isinstance(value, OSError):
            raise self.error(value) from None

    def error(self, e: OSError) -> WriteError:
        reason = e.strerror or str(e)
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            reason = "no space left on the device"
        elif e.errno == errno.EROFS:
            reason = "read-only file system"
        elif e.errno in (errno.EACCES, errno.EPERM):
            reason = f"permission denied (folder {self.dir})"
        elif e.errno == errno.EFBIG:
            reason = "file too large (file size limit)"
        if self.committed:
            return WriteError(f"{self.shown}: written, but then: {reason}")
        return WriteError(f"{self.shown}: cannot write: {reason}; nothing was changed")

    def temp_file(self) -> Path:
        import secrets  # imports hashlib, random, hmac (~0.01 s): only when writing

        name = f".{self.out.name[:120]}{TMP_MARK}{os.getpid()}.{secrets.token_hex(4)}"
        p = self.dir / name
        self.temps.append(p)
        return p

    def write_file(self, path: Path, chunks) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            first = True
            for chunk in chunks:
                view = memoryview(chunk() if callable(chunk) else chunk)
                while view:
                    n = os.write(fd, view[:1 << 26])
                    view = view[n:]
                    if first:
                        _fault("write")
                        first = False
                del view  # this chunk's bytes go before the next one's are read
            os.fsync(fd)
        finally:
            os.close(fd)

    def place_new(self, tmp: Path, dest: Path) -> None:
        """Rename `tmp` to `dest`, which must not exist (never replaces a file)."""
        try:
            os.link(tmp, dest)
        except FileExistsError:
            raise OSError(errno.EEXIST, f"{dest.name} appeared while writing") from None
        except OSError:  # no hard links here: the folder is locked and dest was free a moment ago
            if os.path.lexists(dest):
                raise OSError(errno.EEXIST, f"{dest.name} appeared while writing") from None
            os.replace(tmp, dest)
            self.temps.remove(tmp)
            self.placed.append(dest)
            return
        self.placed.append(dest)
        os.unlink(tmp)
        self.temps.remove(tmp)

    def replace(self, tmp: Path, dest: Path) -> None:
        os.replace(tmp, dest)
        self.temps.remove(tmp)

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError:
            pass  # some file systems cannot sync a folder; the renames happened


_STALE = re.compile(r"\..*" + re.escape(TMP_MARK) + r"([0-9]+)\.[0-9a-f]+")


def _clean_stale(folder: Path, locked: bool) -> None:
    """Remove the temporaries a killed writer left in `folder`: under the folder's lock every other
    writer's temporary is stale (a live writer would hold the lock); without locks, only those whose
    process is gone."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    me = os.getpid()
    for name in names:
        m = _STALE.fullmatch(name)
        if m is None:
            continue
        pid = int(m.group(1))
        if pid == me:
            continue
        if not locked and _alive(pid):
            continue
        try:
            (folder / name).unlink()
        except OSError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def _fault(step: str) -> None:
    spec = os.environ.get(_FAULT_ENV)
    if not spec:
        return
    where, _, action = spec.partition(":")
    if where != step:
        return
    if action == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "eio":
        raise OSError(errno.EIO, os.strerror(errno.EIO))
