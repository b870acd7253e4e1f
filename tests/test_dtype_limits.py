"""dtype_limits holds the numeric-type limits, each right, and no other module spells one."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import onnxdoctor
from onnxdoctor import dtype_limits as L

SRC = Path(onnxdoctor.__file__).resolve().parent


def test_float32():
    assert L.FP32_MAX == float(np.finfo(np.float32).max) == (2 - 2**-23) * 2.0**127


def test_float16():
    assert L.FP16_MAX == float(np.finfo(np.float16).max)
    assert L.FP16_TINY == float(np.finfo(np.float16).smallest_subnormal)
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(L.FP16_OVERFLOW).astype(np.float16))
        assert np.isinf(np.float32(-L.FP16_OVERFLOW).astype(np.float16))
    below = np.nextafter(np.float32(L.FP16_OVERFLOW), np.float32(0))
    assert float(below.astype(np.float16)) == L.FP16_MAX  # just below the threshold rounds to the max


def test_bfloat16():
    bf16 = ml_dtypes.bfloat16
    assert L.BF16_MAX == float(ml_dtypes.finfo(bf16).max) == (2 - 2**-7) * 2.0**127
    assert float(np.array([0x7F7F], np.uint16).view(bf16)[0]) == L.BF16_MAX
    assert np.float32(L.BF16_MAX) == L.BF16_MAX  # exactly a float32 too
    assert L.BF16_OVERFLOW == (2 - 2**-8) * 2.0**127
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(L.BF16_OVERFLOW).astype(bf16))
        assert np.isinf(np.float32(-L.FP32_MAX).astype(bf16))  # finfo(float32).min masks
    below = np.nextafter(np.float32(L.BF16_OVERFLOW), np.float32(0))
    assert float(below.astype(bf16)) == L.BF16_MAX


def test_integers():
    assert (L.INT32_MIN, L.INT32_MAX) == (int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max))
    assert (L.INT64_MIN, L.INT64_MAX) == (int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max))


# Values that are the limits (or their spellings' results).
_LIMIT_VALUES = {L.FP32_MAX, L.FP16_MAX, L.FP16_OVERFLOW, L.FP16_TINY, L.BF16_MAX, L.BF16_OVERFLOW,
                 float(L.INT32_MAX), float(L.INT64_MAX), float(-L.INT32_MIN), float(-L.INT64_MIN)}


def _lookups(path: Path, root: Path) -> list[str]:
    """finfo/iinfo of a named type (`np.finfo(np.float32)`, `iinfo("int32")`): a limit spelled by lookup.
    A lookup of a dtype held in a variable (the range of whatever type an input has) is not one."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
        arg = node.args[0]
        named = isinstance(arg, ast.Constant) or (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name)
                                                  and arg.value.id in ("np", "numpy", "ml_dtypes"))
        if name in ("finfo", "iinfo") and named:
            found.append(f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def _spellings(path: Path, root: Path = SRC) -> list[str]:
    """Code (not strings or comments) in `path` that spells a limit: a literal of its value, a power of
    two that is one (2**31, 2**-24, ...), or a finfo/iinfo lookup of a named type."""
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.STRING)]
    found = _lookups(path, root)
    for k, t in enumerate(tokens):
        where = f"{path.relative_to(root)}:{t.start[0]}: {t.line.strip()}"
        if t.type == tokenize.NUMBER and float(eval(t.string)) in _LIMIT_VALUES:  # noqa: S307 - a literal
            found.append(where)
        elif t.type == tokenize.NUMBER and t.string in ("2", "2.0") and k + 2 < len(tokens) and tokens[k + 1].string == "**":
            sign = -1 if tokens[k + 2].string == "-" else 1
            exp = tokens[k + 3 if sign < 0 else k + 2]
            if exp.type == tokenize.NUMBER and 2.0 ** (sign * int(exp.string)) in _LIMIT_VALUES | {2.0**31, 2.0**63, 2.0**127}:
                if not t.line.lstrip().startswith("PROTOBUF"):  # protobuf's 2 GiB message limit is no numeric type's
                    found.append(where)
    return found


def test_no_module_but_dtype_limits_spells_a_limit():
    files = [p for p in sorted(SRC.rglob("*.py")) if p.name != "dtype_limits.py"]
    assert len(files) > 50
    found = [hit for p in files for hit in _spellings(p)]
    assert not found, "use onnxdoctor.dtype_limits:\n" + "\n".join(found)


@pytest.mark.parametrize("line", ["X = 65504.0", "Y = float(np.finfo(np.float16).max)", "S = np.iinfo('int32').min", "Z = 2**-24", "T = 2.0 ** -24", "W = -(2 ** 31)",
                                  "V = 3.4028234663852886e38", "U = 6.5504e4"])
def test_the_scan_sees_each_spelling(tmp_path, line):
    probe = tmp_path / "probe.py"
    probe.write_text(f"{line}\nOK = 'a 65504 in a string'  # and 2**31 in a comment\nPROTOBUF_LIMIT = 2**31 - 1\n"
                     "RANGE = np.iinfo(dtype).max  # the range of a type held in a variable\n")
    hits = _spellings(probe, tmp_path)
    assert len(hits) == 1 and line in hits[0], hits
