"""`load()` and `from_proto()`: the only ways a model enters onnxdoctor. Parse without reading external
weights, validate (validate.py), run shape inference once (inference.py)."""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf.message import DecodeError

from .. import _wire
from .._onnx import ModelProto
from ..errors import ModelLoadError
from .core import MAX_SUBGRAPH_DEPTH, Model, _TooDeep
from .graph import LazyBytes
from .inference import run_shape_inference, use_helper_result
from .validate import _validate, _validate_tensors

PROTOBUF_LIMIT = 2**31 - 1
_LFS_PREFIX = b"version https://git-lfs.github.com/spec"


def load(path: str | os.PathLike, *, infer_shapes: bool = True, shapes: dict | None = None,
         use_prefetch: bool = False, lazy_weights: bool = False) -> Model:
    """Read a model file: graph structure only, external weights untouched. Raises ModelLoadError.
    `shapes` ({input: dims}) freezes graph-input dimensions before shape inference. With `use_prefetch`,
    the shape inference started by `prefetch.start(path)` in a helper process is used, if any.
    With `lazy_weights` (for analysis only: `model.proto` then lacks them), the big inline weights of
    a big file stay in the file, which stays open (_wire.split); Graph.raw_data and
    Graph.initializer_value read them when a rule asks."""
    from .. import prefetch

    try:
        return _load(Path(path), str(path), infer_shapes, shapes, use_prefetch, lazy_weights)
    finally:
        prefetch.discard(path)  # a result not taken (error, frozen shapes, no inference) is not wanted


def _load(p: Path, shown: str, infer_shapes: bool, shapes: dict | None, use_prefetch: bool,
          lazy_weights: bool = False) -> Model:
    if not p.exists():
        raise ModelLoadError(shown, "no such file")
    if p.is_dir():
        raise ModelLoadError(shown, "is a directory, not a model file")
    try:
        st = p.stat()
        size = st.st_size
        if size == 0:
            raise ModelLoadError(shown, "empty file")
        if size > PROTOBUF_LIMIT:
            raise ModelLoadError(shown, f"file is {size / 2**30:.1f} GiB, over protobuf's 2 GiB limit for one message; save the weights as external data")
        if lazy_weights:
            data, left_out, view = _wire.read_model(p)
        else:
            left_out, view = {}, None
            with open(p, "rb") as fh:
                data = fh.read()
    except OSError as e:
        raise ModelLoadError(shown, f"cannot read: {e.strerror or e}") from None
    if data.startswith(_LFS_PREFIX):
        raise ModelLoadError(shown, "is a Git LFS pointer, not the model itself; run `git lfs pull` to fetch it")
    proto = _parse(shown, data)
    model = Model(proto, shown, base_dir=p.resolve().parent)
    model.lazy_raw.update((name, LazyBytes(view, offset, length)) for name, (offset, length) in left_out.items())
    if use_prefetch and infer_shapes and not shapes:  # frozen shapes change the graph before inference
        from .. import prefetch

        del data
        _prepare(model, infer_shapes, shapes, lambda: prefetch.take(p, st))
    else:
        # The file's bytes are what shape inference needs: no second serialization of the graph.
        _prepare(model, infer_shapes, shapes, serialized=None if shapes else data)
    return model


def from_proto(
    proto: ModelProto, *, path: str | None = None, base_dir: Path | None = None, infer_shapes: bool = True,
    shapes: dict | None = None,
) -> Model:
    """Wrap an in-memory ModelProto (Python API), with the same validation as `load`.
    With `shapes`, a copy is frozen: the caller's proto is not modified."""
    if not isinstance(proto, ModelProto):
        raise TypeError(f"expected onnx.ModelProto, got {type(proto).__name__}")
    if shapes:
        copy = ModelProto()
        copy.CopyFrom(proto)
        proto = copy
    model = Model(proto, path, base_dir=base_dir.resolve() if base_dir else None)
    _prepare(model, infer_shapes, shapes)
    return model


def _prepare(model: Model, infer_shapes: bool, shapes: dict | None = None, inferred_elsewhere=None,
             serialized: bytes | None = None) -> None:
    """Freeze input shapes, validate tensors, run shape inference, build the graph views once and
    validate structure. Inference runs on the unvalidated graph: it is linear without data propagation
    and survives cycles. `inferred_elsewhere()` returns a helper process's inference result, if any
    (prefetch.take): then the views are built first and typed when it is collected."""
    if inferred_elsewhere is not None and not shapes:
        # The views are built before inference finishes anyway: built first, their op types spare
        # the tensor walk reading every node's again. Building them reads names, not tensors.
        try:
            model.graphs
        except _TooDeep:
            raise ModelLoadError(model.path, f"subgraphs are nested more than {MAX_SUBGRAPH_DEPTH} levels deep") from None
    _validate_tensors(model)
    if shapes:
        from ..shapes import freeze_inputs

        model.frozen_inputs = tuple(freeze_inputs(model.proto, shapes, model.path))
    if inferred_elsewhere is None:
        if infer_shapes:
            run_shape_inference(model, serialized)
        _validate(model)
        if model.text_repairs and infer_shapes:
            run_shape_inference(model)  # the types of before were keyed by the undecodable names
        return
    _validate(model)
    if model.text_repairs:
        run_shape_inference(model)  # the helper inferred the file as it was
        return
    use_helper_result(model, inferred_elsewhere())


def _parse(shown: str, data: bytes) -> ModelProto:
    proto = ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as e:
        msg = str(e)
        if "MaxDepth" in msg or "recursion" in msg.lower():
            raise ModelLoadError(shown, "protobuf nesting is too deep (subgraphs nested beyond the parser's limit)") from None
        raise ModelLoadError(shown, "not a valid ONNX protobuf (truncated, corrupt, or not an ONNX model)") from None
    except RecursionError:
        raise ModelLoadError(shown, "protobuf nesting is too deep") from None
    if proto.ir_version <= 0 or not proto.HasField("graph"):
        raise ModelLoadError(shown, "not an ONNX model (no IR version or no graph)")
    return proto
