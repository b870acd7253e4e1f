"""Writing models safely: atomically, never over the input unless asked, external data kept external."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import onnx

from .errors import UsageError

# Above this the protobuf cannot be serialized as one message: weights go to external data.
PROTOBUF_SAFE_BYTES = 2**31 - 2**26


def check_output_path(input_path: str | Path, output: str | Path | None, in_place: bool) -> Path:
    src = Path(input_path).resolve()
    if in_place:
        if output is not None and Path(output).resolve() != src:
            raise UsageError("--in-place and -o/--output name different files; use one of them")
        return src
    if output is None:
        raise UsageError("fix needs -o/--output FILE (or --in-place to overwrite the input)")
    out = Path(output)
    if out.resolve() == src:
        raise UsageError(f"-o {output} is the input model; pass --in-place to overwrite it")
    if out.exists() and out.is_dir():
        raise UsageError(f"-o {output} is a directory")
    if not out.parent.exists():
        raise UsageError(f"-o {output}: folder {out.parent} does not exist")
    return out


def save_model(model: onnx.ModelProto, output: str | Path, *, external: bool) -> list[Path]:
    """Write `model` to `output` atomically. With `external` (the input had external data) or when the
    model is too big for one protobuf, weights go to `<output name>.data` beside it. Everything is
    first written into a temporary folder next to the output, then moved into place (data file
    first), so a crash never leaves a half-written model. Returns the files written."""
    out = Path(output)
    use_external = external or model.ByteSize() > PROTOBUF_SAFE_BYTES
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp_model = tmpdir / out.name
        written = [out]
        if use_external:
            data_name = f"{out.name}.data"
            copy = onnx.ModelProto()
            copy.CopyFrom(model)
            onnx.save_model(copy, tmp_model, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=data_name, size_threshold=1024, convert_attribute=False)
            if (tmpdir / data_name).exists():
                os.replace(tmpdir / data_name, out.parent / data_name)
                written.append(out.parent / data_name)
        else:
            onnx.save_model(model, tmp_model)
        os.replace(tmp_model, out)
        return written
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
