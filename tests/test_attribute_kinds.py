"""A list attribute stored as another kind (`axes = -1` as an INT where ReduceMean/Squeeze define
INTS): the pattern detectors and rank rules that read it are reported by MOD506 and go on, instead
of a traceback (fuzz seed 2036, case 5: a LayerNorm whose variance ReduceMean had an INT `axes`)."""

from __future__ import annotations

import onnx.parser
import pytest

from onnxdoctor.api import check

LAYER_NORM = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[2, 8] x) => (float[2, 8] y) <float eps = {1e-5}, float two = {2.0}> {
        m = ReduceMean<axes = [-1]>(x)
        d = Sub(x, m)
        p = Pow(d, two)
        v = ReduceMean<axes = -1>(p)
        e = Add(v, eps)
        s = Sqrt(e)
        y = Div(d, s)
    }"""

SQUEEZE = """<ir_version: 8, opset_import: ["" : 11]>
    g (float[2, 1, 8] x) => (float[2, 8] y) {
        a = Unsqueeze<axes = 0>(x)
        b = Squeeze<axes = 0>(a)
        y = Squeeze<axes = 1>(b)
    }"""


@pytest.mark.parametrize("text", [LAYER_NORM, SQUEEZE], ids=["layer-norm-variance", "squeeze-chain"])
@pytest.mark.parametrize("trt", ["8.6", "10.15"])
def test_an_int_where_a_list_is_defined_is_mod506_not_a_traceback(text, trt):
    report = check(onnx.parser.parse_model(text), trt=trt)
    mismatches = [f for f in report.findings if f.code == "MOD506"]
    assert mismatches and all("attribute 'axes' is INT" in f.message for f in mismatches), \
        [(f.code, f.message) for f in report.findings]
