"""Input shapes given on the command line or in config: `NAME:DIMS` and `NAME:MIN:OPT:MAX`.

DIMS are written `1x3x224x224` or `1,3,224,224`. Applying shapes to a model freezes graph-input
dimensions before shape inference, so shape computations downstream can become constant.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._onnx import ModelProto

from .errors import UsageError


@dataclass(frozen=True)
class ShapeSpec:
    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max


def _dims(text: str, where: str) -> tuple[int, ...]:
    parts = [p for p in text.replace(",", "x").split("x")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{where}: dimensions must be integers like 1x3x224x224, got {text!r}") from None
    if any(d < 0 for d in dims):
        raise UsageError(f"{where}: dimensions must not be negative, got {text!r}")
    return dims


def parse_shape(text: str) -> ShapeSpec:
    """`NAME:DIMS` or `NAME:MIN:OPT:MAX`. The name may itself contain ':' only in the single-DIMS form
    when written with the last colon separating dims (e.g. `input:0:1x3`)."""
    where = f"--shape {text!r}"
    parts = text.rsplit(":", 3)
    if len(parts) == 4 and all(_looks_like_dims(p) for p in parts[1:]):
        name, lo, opt, hi = parts
        spec = ShapeSpec(name, _dims(lo, where), _dims(opt, where), _dims(hi, where))
        if not (len(spec.min) == len(spec.opt) == len(spec.max)):
            raise UsageError(f"{where}: MIN, OPT and MAX must have the same rank")
        if any(not (a <= b <= c) for a, b, c in zip(spec.min, spec.opt, spec.max)):
            raise UsageError(f"{where}: each dimension needs MIN <= OPT <= MAX")
        return spec
    name, sep, dims = text.rpartition(":")
    if not sep or not name or not _looks_like_dims(dims):
        raise UsageError(f"{where}: expected NAME:DIMS (e.g. input:1x3x224x224) or NAME:MIN:OPT:MAX")
    d = _dims(dims, where)
    return ShapeSpec(name, d, d, d)


def _looks_like_dims(text: str) -> bool:
    return bool(text) and all(p.isdigit() for p in text.replace(",", "x").split("x"))


def parse_shapes(texts) -> dict[str, ShapeSpec]:
    out: dict[str, ShapeSpec] = {}
    for t in texts:
        spec = parse_shape(t)
        if spec.name in out:
            raise UsageError(f"--shape: input {spec.name!r} given twice")
        out[spec.name] = spec
    return out


def freeze_inputs(proto: ModelProto, shapes: dict[str, tuple[int, ...]], path: str) -> list[str]:
    """Set graph-input dims in place. Returns the names frozen. Errors name the input and the problem."""
    inputs = {vi.name: vi for vi in proto.graph.input}
    inits = {t.name for t in proto.graph.initializer}
    frozen = []
    for name, dims in shapes.items():
        vi = inputs.get(name)
        if vi is None or name in inits:
            known = ", ".join(n for n in inputs if n not in inits) or "none"
            raise UsageError(f"{path}: --shape names input {name!r}, which the model does not have (inputs: {known})")
        if not vi.type.HasField("tensor_type"):
            raise UsageError(f"{path}: --shape: input {name!r} is not a tensor")
        shape = vi.type.tensor_type.shape
        if vi.type.tensor_type.HasField("shape") and len(shape.dim) != len(dims):
            raise UsageError(f"{path}: --shape {name}: model input has rank {len(shape.dim)}, got {len(dims)} dims")
        for i, d in enumerate(shape.dim):
            # a negative dim_value on a graph input is an exporter's "dynamic" (Paddle writes -1)
            if d.HasField("dim_value") and d.dim_value >= 0 and d.dim_value != dims[i]:
                raise UsageError(f"{path}: --shape {name}: dimension {i} is fixed to {d.dim_value} in the model, got {dims[i]}")
        del shape.dim[:]
        for d in dims:
            shape.dim.add().dim_value = d
        frozen.append(name)
    return frozen
