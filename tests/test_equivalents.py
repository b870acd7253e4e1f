"""Exact equivalents for configurations an importer rejects (rewrites/equivalents.py) and the
CumSum form of hardmax-to-argmax-onehot: applies where the finding is, not elsewhere, equal in
ONNX Runtime, full check passes, the finding is gone, every op emitted is imported by the release."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from onnxdoctor import prove
from onnxdoctor.engine import analyze
from onnxdoctor.kb import knowledge_base
from onnxdoctor.model import from_proto
from onnxdoctor.registry import all_rules
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.rewrites._gs import cleaned
from onnxdoctor.target import Target


def _errors(m, trt):
    return [f for f in analyze(from_proto(m), Target.make(trt), all_rules()) if str(f.severity) == "error"]


def apply(name: str, text: str, trt: str, feeds=None, exact=True):
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    before = _errors(model, trt)
    outcome = get_rewrite(name).apply(model, RewriteContext(target=Target.make(trt)))
    if not outcome.changed:
        return outcome, model, model
    assert any(f.fix and f.fix.rewrite == name for f in before), [(f.code, f.fix) for f in before]
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    feeds = feeds or prove.generate_inputs(model, seed=0)
    ref, got = prove.run(model, feeds), prove.run(out, feeds)
    for k in ref:
        if exact:
            np.testing.assert_array_equal(got[k], ref[k])
        else:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-5)
    assert not _errors(out, trt), [(f.code, f.message) for f in _errors(out, trt)]
    ops = knowledge_base().release(Target.make(trt).trt).ops
    assert {n.op_type for n in out.graph.node} <= set(ops)
    return outcome, model, out


@pytest.mark.parametrize("k", [0, 1, -2])
def test_eyelike_of_a_dynamic_shape(k):
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[N,M] x) => (float[N,M] y) {{ e = EyeLike<k = {k}>(x) y = Add(e, x) }}"""
    feeds = {"x": np.zeros((3, 5), np.float32)}
    outcome, _, out = apply("eyelike-to-range-equal", text, "10.15", feeds)
    assert "EyeLike" not in [n.op_type for n in out.graph.node]


def test_eyelike_of_a_static_shape_is_left_alone():
    outcome, _, _ = apply("eyelike-to-range-equal", """<ir_version: 8, opset_import: ["" : 17]>
    g (float[3,3] x) => (float[3,3] y) { y = EyeLike(x) }""", "10.15")
    assert not outcome.changed and "static" in outcome.skipped[0]


@pytest.mark.parametrize("opset,axis", [(13, 1), (13, -1), (11, 1)])
def test_hardmax_of_a_dynamic_axis_marks_the_first_maximum(opset, axis):
    text = f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,N] x) => (float[2,N] y) {{ y = Hardmax<axis = {axis}>(x) }}"""
    # Ties: the first maximum wins, as in ONNX Runtime.
    x = np.array([[1, 3, 3, 0, 2], [5, 5, 5, 5, 5]], np.float32)
    outcome, _, out = apply("hardmax-to-argmax-onehot", text, "10.15" if opset >= 13 else "8.6", {"x": x})
    assert "CumSum" in [n.op_type for n in out.graph.node]
    np.testing.assert_array_equal(prove.run(out, {"x": x})["y"], [[0, 1, 0, 0, 0], [1, 0, 0, 0, 0]])


def test_deform_conv_asymmetric_pads_become_an_explicit_pad():
    text = """<ir_version: 9, opset_import: ["" : 19]>
    g (float[1,2,5,5] x, float[2,2,3,3] w, float[1,18,4,4] off) => (float[1,2,4,4] y) {
      y = DeformConv<kernel_shape = [3, 3], pads = [0, 0, 1, 1]>(x, w, off)
    }"""
    outcome, _, out = apply("deform-conv-explicit-pads", text, "10.15", exact=False)
    dc = next(n for n in out.graph.node if n.op_type == "DeformConv")
    assert list(next(a.ints for a in dc.attribute if a.name == "pads")) == [0, 0, 0, 0]


def test_deform_conv_symmetric_pads_are_left_alone():
    text = """<ir_version: 9, opset_import: ["" : 19]>
    g (float[1,2,5,5] x, float[2,2,3,3] w, float[1,18,5,5] off) => (float[1,2,5,5] y) {
      y = DeformConv<kernel_shape = [3, 3], pads = [1, 1, 1, 1]>(x, w, off)
    }"""
    outcome, _, _ = apply("deform-conv-explicit-pads", text, "10.15")
    assert not outcome.changed


@pytest.mark.parametrize("k,d,st,pads,shape", [
    ([2, 2], [2, 2], [1, 1], [0, 0, 0, 0], [1, 2, 5, 5]),
    ([3, 2], [2, 3], [2, 1], [1, 0, 2, 1], [2, 3, 7, 6]),
    ([3], [2], [2], [0, 0], [1, 1, 9]),
])
def test_dilated_max_pool_becomes_max_of_strided_slices(k, d, st, pads, shape):
    n = len(k)
    outs = [(shape[2 + i] + pads[i] + pads[n + i] - d[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(n)]
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float{shape} x) => (float{shape[:2] + outs} y) {{
      y = MaxPool<kernel_shape = {k}, dilations = {d}, strides = {st}, pads = {pads}>(x)
    }}"""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    outcome, _, out = apply("max-pool-dilations-to-slices", text, "10.15", feeds)
    assert "MaxPool" not in [n.op_type for n in out.graph.node]


def test_max_pool_without_dilations_or_with_indices_read_is_left_alone():
    outcome, _, _ = apply("max-pool-dilations-to-slices", """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,1,4,4] x) => (float[1,1,2,2] y) { y = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(x) }""", "10.15")
    assert not outcome.changed
    outcome, _, _ = apply("max-pool-dilations-to-slices", """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,1,5,5] x) => (float[1,1,3,3] y, int64[1,1,3,3] i) { y, i = MaxPool<kernel_shape = [2, 2], dilations = [2, 2]>(x) }""", "10.15")
    assert not outcome.changed and "Indices" in outcome.skipped[0]


@pytest.mark.parametrize("pads", [[0, 1, 0, 2], [1, 0, 2, 3], [0, -1, 0, 2]])
def test_wrap_pad_before_10_becomes_concat_of_slices(pads):
    shape = [2 + pads[0] + pads[2], 4 + pads[1] + pads[3]]
    text = f"""<ir_version: 9, opset_import: ["" : 19]>
    g (float[2,4] x) => (float{shape} y) <int64[4] p = {{{', '.join(map(str, pads))}}}> {{ y = Pad<mode = "wrap">(x, p) }}"""
    outcome, _, out = apply("pad-wrap-to-slices", text, "8.6")
    assert "Pad" not in [n.op_type for n in out.graph.node]


def test_wrap_pad_with_runtime_pads_is_left_alone():
    outcome, _, _ = apply("pad-wrap-to-slices", """<ir_version: 9, opset_import: ["" : 19]>
    g (float[2,4] x, int64[4] p) => (float[?,?] y) { y = Pad<mode = "wrap">(x, p) }""", "8.6")
    assert not outcome.changed and "not constant" in outcome.skipped[0]


@pytest.mark.parametrize("k,st,d,pads,so,shape", [
    ([2, 2], [2, 2], [1, 1], [0, 0, 0, 0], 0, [2, 3, 4, 5]),
    ([3, 3], [1, 2], [1, 1], [1, 1, 1, 0], 0, [1, 2, 5, 6]),
    ([2, 2], [1, 1], [2, 1], [0, 1, 0, 1], 1, [2, 2, 5, 4]),
    ([3], [2], [1], [1, 1], 0, [2, 3, 9]),
])
def test_max_pool_indices_by_argmax(k, st, d, pads, so, shape):
    n = len(k)
    outs = [(shape[2 + i] + pads[i] + pads[n + i] - d[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(n)]
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float{shape} x) => (float{shape[:2] + outs} y, int64{shape[:2] + outs} i) {{
      y, i = MaxPool<kernel_shape = {k}, strides = {st}, dilations = {d}, pads = {pads}, storage_order = {so}>(x)
    }}"""
    x = np.random.default_rng(1).integers(-3, 4, size=shape).astype(np.float32)  # many ties: the first maximum must win
    outcome, _, out = apply("max-pool-indices-by-argmax", text, "10.15", {"x": x})
    assert "MaxPool" not in [n_.op_type for n_ in out.graph.node]


def test_max_pool_indices_with_a_dynamic_batch():
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[N,2,4,4] x) => (float[N,2,2,2] y, int64[N,2,2,2] i) { y, i = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(x) }"""
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 2, 4, 4)).astype(np.float32)
        apply("max-pool-indices-by-argmax", text, "10.15", {"x": x})


def test_max_pool_indices_unread_is_left_to_the_plain_rewrites():
    outcome, _, _ = apply("max-pool-indices-by-argmax", """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,1,4,4] x) => (float[1,1,2,2] y) { y = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(x) }""", "10.15")
    assert not outcome.changed


@pytest.mark.parametrize("opset,shape,attrs,length", [
    (20, [1, 16, 1], "", None),
    (20, [2, 12, 2], "inverse = 1", None),
    (20, [1, 16, 1], "onesided = 1", None),
    (17, [3, 10, 2], "axis = 1", 16),
    (17, [2, 5, 6, 1], "axis = 2, onesided = 1", 4),
])
def test_dft_becomes_matmuls(opset, shape, attrs, length):
    inputs = "x, n" if length else "x"
    inits = f"<int64 n = {{{length}}}>" if length else ""
    op = f"DFT<{attrs}>" if attrs else "DFT"
    text = f"""<ir_version: 9, opset_import: ["" : {opset}]>
    g (float{shape} x) => (float y) {inits} {{ y = {op}({inputs}) }}"""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    # The output's shape, as ONNX Runtime computes it, written into the model (the full check needs it).
    out_shape = list(prove.run(onnx.parser.parse_model(text), feeds)["y"].shape)
    text = text.replace("(float y)", f"(float{out_shape} y)")
    outcome, _, out = apply("dft-to-matmul", text, "10.15", feeds, exact=False)
    assert "DFT" not in [n.op_type for n in out.graph.node] and "MatMul" in [n.op_type for n in out.graph.node]


def test_dft_of_a_dynamic_length_is_left_alone():
    outcome, _, _ = apply("dft-to-matmul", """<ir_version: 9, opset_import: ["" : 20]>
    g (float[1,N,1] x) => (float[1,N,2] y) { y = DFT(x) }""", "10.15")
    assert not outcome.changed and "not static" in outcome.skipped[0]


@pytest.mark.parametrize("body,out", [
    ("r = Reshape(x, s9)\n y = Reshape(r, s3)", "float[2,4,4]"),
    ("r = Reshape(x, s9)\n y = Flatten<axis = 1>(r)", "float[2,16]"),
    ("r = Reshape(x, s9)\n a = Unsqueeze(r, z)\n y = Reshape(a, s3)", "float[2,4,4]"),
])
def test_reshape_chains_through_rank_9_collapse(body, out):
    text = f"""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2,4,4] x) => ({out} y) <int64[9] s9 = {{2, 1, 2, 1, 2, 1, 2, 1, 2}}, int64[3] s3 = {{2, 4, 4}}, int64[1] z = {{0}}> {{
      {body}
    }}"""
    outcome, model, out_model = apply("collapse-reshape-chains", text, "10.15")
    assert outcome.changed and [n.op_type for n in out_model.graph.node] == ["Reshape"]


def test_reshape_chain_with_a_dynamic_batch_uses_minus_one():
    text = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[N,4,4] x) => (float[N,16] y) <int64[9] s9 = {-1, 1, 2, 1, 2, 1, 2, 1, 2}, int64[2] s2 = {-1, 16}> {
      r = Reshape(x, s9)
      y = Reshape(r, s2)
    }"""
    for n in (1, 3):
        feeds = {"x": np.random.default_rng(n).standard_normal((n, 4, 4)).astype(np.float32)}
        outcome, _, out = apply("collapse-reshape-chains", text, "10.15", feeds)
        assert [n_.op_type for n_ in out.graph.node] == ["Reshape"]


def test_a_rank_9_value_read_by_arithmetic_names_no_fix():
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2,4,4] x) => (float[2,4,4] y) <int64[9] s9 = {2, 1, 2, 1, 2, 1, 2, 1, 2}, int64[3] s3 = {2, 4, 4}> {
      r = Reshape(x, s9)
      a = Relu(r)
      y = Reshape(a, s3)
    }""")
    found = [f for f in _errors(model, "10.15") if f.code == "TRT124" and f.location.tensor == "r"]
    assert found and found[0].fix is None


@pytest.mark.parametrize("attrs,xs,ws,offc,masked,bias", [
    ("kernel_shape = [3, 3]", [1, 2, 5, 5], [2, 2, 3, 3], 18, False, False),
    ("kernel_shape = [3, 3], pads = [0, 0, 1, 1], strides = [2, 1]", [2, 4, 6, 5], [3, 4, 3, 3], 18, True, True),
    ("kernel_shape = [2, 2], dilations = [2, 1], group = 2, offset_group = 2", [1, 4, 6, 6], [4, 2, 2, 2], 16, True, False),
])
def test_deform_conv_becomes_grid_sample_and_conv(attrs, xs, ws, offc, masked, bias):
    import math as m_
    k = [int(v) for v in attrs.split("kernel_shape = [")[1].split("]")[0].split(",")]
    get = lambda name, default: [int(v) for v in attrs.split(f"{name} = [")[1].split("]")[0].split(",")] if f"{name} = [" in attrs else default  # noqa: E731
    pads, st, dl = get("pads", [0, 0, 0, 0]), get("strides", [1, 1]), get("dilations", [1, 1])
    oh = (xs[2] + pads[0] + pads[2] - dl[0] * (k[0] - 1) - 1) // st[0] + 1
    ow = (xs[3] + pads[1] + pads[3] - dl[1] * (k[1] - 1) - 1) // st[1] + 1
    og = int(attrs.split("offset_group = ")[1].split(",")[0]) if "offset_group" in attrs else 1
    ins = f"float{xs} x, float{ws} w, float[{xs[0]},{offc},{oh},{ow}] off"
    args = "x, w, off"
    if bias:
        ins += f", float[{ws[0]}] bb"
        args += ", bb"
    if masked:
        ins += f", float[{xs[0]},{og * m_.prod(k)},{oh},{ow}] mk"
        args += (", mk" if bias else ", , mk")
    text = f"""<ir_version: 9, opset_import: ["" : 19]>
    g ({ins}) => (float[{xs[0]},{ws[0]},{oh},{ow}] y) {{ y = DeformConv<{attrs}>({args}) }}"""
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal(xs).astype(np.float32), "w": rng.standard_normal(ws).astype(np.float32),
             "off": (rng.standard_normal([xs[0], offc, oh, ow]) * 1.5).astype(np.float32)}
    if bias:
        feeds["bb"] = rng.standard_normal([ws[0]]).astype(np.float32)
    if masked:
        feeds["mk"] = rng.uniform(0, 1, [xs[0], og * m_.prod(k), oh, ow]).astype(np.float32)
    outcome, _, out = apply("deform-conv-to-grid-sample", text, "8.6", feeds, exact=False)
    assert "DeformConv" not in [n.op_type for n in out.graph.node] and "GridSample" in [n.op_type for n in out.graph.node]


@pytest.mark.parametrize("red,opset", [("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
@pytest.mark.parametrize("idx_shape,idx", [([3, 1], [[1], [-1], [1]]), ([2, 2, 2], [[[0, 1], [2, 0]], [[0, 1], [3, 2]]])])
def test_scatter_nd_reduction_becomes_dense(red, opset, idx_shape, idx):
    ushape = idx_shape[:-1] + [4, 3][idx_shape[-1]:]
    text = f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[4,3] data, float{ushape} upd) => (float[4,3] y) <int64{idx_shape} idx = {{{', '.join(str(v) for v in np.ravel(idx))}}}> {{
      y = ScatterND<reduction = "{red}">(data, idx, upd)
    }}"""
    rng = np.random.default_rng(0)
    feeds = {"data": rng.standard_normal((4, 3)).astype(np.float32), "upd": rng.standard_normal(ushape).astype(np.float32)}
    outcome, _, out = apply("scatter-nd-reduction-to-dense", text, "10.15", feeds, exact=red in ("max", "min"))
    assert "ScatterND" not in [n.op_type for n in out.graph.node]


def test_scatter_nd_explicit_none_reduction_is_dropped_before_10_9():
    text = """<ir_version: 8, opset_import: ["" : 16]>
    g (float[4,3] data, int64[2,1] idx, float[2,3] upd) => (float[4,3] y) { y = ScatterND<reduction = "none">(data, idx, upd) }"""
    feeds = {"data": np.zeros((4, 3), np.float32), "idx": np.array([[2], [0]], np.int64), "upd": np.ones((2, 3), np.float32)}
    outcome, _, out = apply("scatter-nd-reduction-to-dense", text, "10.8", feeds)
    node = next(n for n in out.graph.node if n.op_type == "ScatterND")
    assert not [a for a in node.attribute if a.name == "reduction"]


@pytest.mark.parametrize("op,extra", [("AveragePool", ""), ("AveragePool", ", count_include_pad = 1"), ("LpPool", ", p = 2"), ("LpPool", ", p = 3")])
@pytest.mark.parametrize("k,st,d,pads,shape", [
    ([2, 2], [1, 1], [2, 2], [0, 0, 0, 0], [1, 2, 5, 5]),
    ([3, 2], [2, 1], [2, 3], [1, 0, 2, 1], [2, 1, 7, 6]),
])
def test_dilated_average_and_lp_pool_become_sums_of_slices(op, extra, k, st, d, pads, shape):
    n = len(k)
    outs = [(shape[2 + i] + pads[i] + pads[n + i] - d[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(n)]
    text = f"""<ir_version: 9, opset_import: ["" : 19]>
    g (float{shape} x) => (float{shape[:2] + outs} y) {{
      y = {op}<kernel_shape = {k}, dilations = {d}, strides = {st}, pads = {pads}{extra}>(x)
    }}"""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    outcome, _, out = apply("avg-lp-pool-dilations-to-slices", text, "10.15", feeds, exact=False)
    assert op not in [n_.op_type for n_ in out.graph.node]


@pytest.mark.parametrize("shape,sizes,policy,mode,ct", [
    ([1, 3, 8, 6], [4, 4], "not_larger", "nearest", "half_pixel"),
    ([2, 3, 9, 12], [18, 20], "not_smaller", "linear", "asymmetric"),
    ([1, 3, 10, 6], [5, 5], "not_larger", "cubic", "pytorch_half_pixel"),
])
def test_keep_aspect_ratio_resize_becomes_its_one_scale(shape, sizes, policy, mode, ct):
    s = np.float32(min(sizes[0] / shape[2], sizes[1] / shape[3]) if policy == "not_larger" else max(sizes[0] / shape[2], sizes[1] / shape[3]))
    out = shape[:2] + [int(np.floor(float(s) * shape[2] + 0.5)), int(np.floor(float(s) * shape[3] + 0.5))]
    text = f"""<ir_version: 9, opset_import: ["" : 19]>
    g (float{shape} x) => (float{out} y) <int64[2] sz = {{{sizes[0]}, {sizes[1]}}}> {{
      y = Resize<mode = "{mode}", axes = [2, 3], keep_aspect_ratio_policy = "{policy}", coordinate_transformation_mode = "{ct}">(x, , , sz)
    }}"""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    outcome, _, res = apply("resize-keep-aspect-ratio-to-scales", text, "10.15", feeds)
    node = next(n for n in res.graph.node if n.op_type == "Resize")
    assert not [a for a in node.attribute if a.name == "keep_aspect_ratio_policy"]


def test_keep_aspect_ratio_resize_whose_rounding_differs_is_left_alone():
    outcome, _, _ = apply("resize-keep-aspect-ratio-to-scales", """<ir_version: 9, opset_import: ["" : 19]>
    g (float[1,3,7,5] x) => (float[1,3,12,9] y) <int64[2] sz = {12, 16}> {
      y = Resize<mode = "linear", axes = [2, 3], keep_aspect_ratio_policy = "not_larger">(x, , , sz)
    }""", "10.15")
    assert not outcome.changed and "rounds to another size" in outcome.skipped[0]


def test_attention_listing_an_unused_present_key_keeps_only_y():
    outcome, _, out = apply("drop-unused-optional-outputs", """<ir_version: 10, opset_import: ["" : 23]>
    g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v) => (float[1,2,4,8] y) {
      y, nk, nv = Attention(q, k, v)
    }""", "10.15")
    assert outcome.changed and "'nk', 'nv'" in outcome.changes[0]
    assert list(out.graph.node[0].output) == ["y"]


def test_optional_outputs_that_are_read_keep_their_place():
    # Dropout's mask is read: nothing to drop. MaxPool's Indices read, an unused middle output of
    # LayerNormalization is unlisted (empty name) while the read InvStdDev keeps position 2.
    text = """<ir_version: 9, opset_import: ["" : 17]>
    g (float[2,4] x) => (float[2,4] y, bool[2,4] m, float[2,1] r) <float[4] s = {1.0, 2.0, 3.0, 4.0}> {
      y0, m = Dropout(x)
      y, mu, r = LayerNormalization(y0, s)
    }"""
    model = onnx.parser.parse_model(text)
    outcome = get_rewrite("drop-unused-optional-outputs").apply(model, RewriteContext(target=Target.make("10.15")))
    assert outcome.changed
    ln = outcome.model.graph.node[1]
    assert list(ln.output) == ["y", "", "r"] and list(outcome.model.graph.node[0].output) == ["y0", "m"]
    onnx.checker.check_model(outcome.model, full_check=True)
    feeds = prove.generate_inputs(model, seed=0)
    ref, got = prove.run(model, feeds), prove.run(outcome.model, feeds)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k])
    unread = onnx.parser.parse_model("""<ir_version: 9, opset_import: ["" : 17]>
    g (float[2,4] x) => (float[2,4] y) { y = Relu(x) }""")
    none = get_rewrite("drop-unused-optional-outputs").apply(unread, RewriteContext(target=Target.make("10.15")))
    assert not none.changed and "no node lists" in none.skipped[0]


@pytest.mark.parametrize("shape,k,axis,largest", [
    ([1, 10000], 5000, -1, 1),
    ([2, 8400], 8400, 1, 0),
    ([9000, 2], 7700, 0, 1),
])
def test_topk_above_3840_in_rounds(shape, k, axis, largest):
    out_shape = list(shape)
    out_shape[axis] = k
    text = f"""<ir_version: 8, opset_import: ["" : 11]>
    g (float{shape} x) => (float{out_shape} v, int64{out_shape} i) <int64[1] k = {{{k}}}> {{
      v, i = TopK<axis = {axis}, largest = {largest}>(x, k)
    }}"""
    rng = np.random.default_rng(0)
    # Many ties (values from a small set): TopK puts lower indices first, and so must every round.
    feeds = {"x": rng.integers(-50, 50, size=shape).astype(np.float32)}
    outcome, _, out = apply("topk-in-rounds", text, "10.15", feeds)
    tops = [n for n in out.graph.node if n.op_type == "TopK"]
    assert len(tops) == -(-k // 3840)
    assert all(numpy_helper.to_array(next(t for t in out.graph.initializer if t.name == n.input[1]))[0] <= 3840 for n in tops)


def test_topk_from_a_static_shape_is_split_after_folding():
    # A detection head's full sort: K = Shape(scores)[1] = 8400.
    from onnxdoctor.fix import FixOptions, fix_model

    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 11]>
    g (float[1,8400] scores) => (float[1,8400] v, int64[1,8400] i) {
      s = Shape(scores)
      i1 = Constant<value = int64[1] {1}>()
      k = Gather<axis = 0>(s, i1)
      v, i = TopK(scores, k)
    }""")
    res = fix_model(model, FixOptions(trt="10.15"))
    assert "topk-in-rounds" in [s.rewrite for s in res.steps if s.status == "applied"]
    assert not [f for f in res.after if str(f.severity) == "error"]
    assert res.proof is not None and res.proof.passed


@pytest.mark.parametrize("text,why", [
    ("""g (float[1,5000] x) => (float[1,3000] v, int64[1,3000] i) <int64[1] k = {3000}> { v, i = TopK(x, k) }""", "within"),
    ("""g (float[1,5000] x, int64[1] k) => (float[1,?] v, int64[1,?] i) { v, i = TopK(x, k) }""", "not a constant"),
    ("""g (float[1,N] x) => (float[1,5000] v, int64[1,5000] i) <int64[1] k = {5000}> { v, i = TopK(x, k) }""", "not static"),
    ("""g (float[1,9000] x) => (float[1,5000] v, int64[1,5000] i) <int64[1] k = {5000}> { v, i = TopK<sorted = 0>(x, k) }""", "sorted=0"),
])
def test_topk_that_cannot_or_need_not_be_split_is_left_alone(text, why):
    outcome, _, _ = apply("topk-in-rounds", '<ir_version: 8, opset_import: ["" : 11]>\n' + text, "10.15")
    assert not outcome.changed and why in outcome.skipped[0]


@pytest.mark.parametrize("shape,mode,extra,tail,out", [
    ([1, 3, 8, 8], "linear", "", "(x, , s)", [1, 3, 4, 4]),
    ([2, 2, 10, 7], "cubic", ', coordinate_transformation_mode = "pytorch_half_pixel"', "(x, , s)", [2, 2, 6, 4]),
    ([1, 2, 9, 12], "linear", ', axes = [2, 3], coordinate_transformation_mode = "align_corners"', "(x, , , sz)", [1, 2, 4, 5]),
    ([1, 2, 6, 5], "cubic", ", exclude_outside = 1, cubic_coeff_a = -0.5", "(x, , s)", [1, 2, 6, 3]),
    ([3, 20], "linear", "", "(x, , s)", [3, 12]),
    ([1, 1, 4, 4], "linear", "", "(x, , s)", [1, 1, 8, 6]),
])
def test_antialiased_resize_becomes_matmuls(shape, mode, extra, tail, out):
    rank = len(shape)
    scales = {4: {(1, 3, 4, 4): "1.0, 1.0, 0.5, 0.5", (2, 2, 6, 4): "1.0, 1.0, 0.6, 0.6", (1, 2, 6, 3): "1.0, 1.0, 1.0, 0.6",
                  (1, 1, 8, 6): "1.0, 1.0, 2.0, 1.5"}, 2: {(3, 12): "1.0, 0.6"}}
    inits = f"<int64[2] sz = {{{out[2]}, {out[3]}}}>" if "sz" in tail else f"<float[{rank}] s = {{{scales[rank][tuple(out)]}}}>"
    text = f"""<ir_version: 9, opset_import: ["" : 19]>
    g (float{shape} x) => (float{out} y) {inits} {{
      y = Resize<mode = "{mode}", antialias = 1{extra}>{tail}
    }}"""
    feeds = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    outcome, _, res = apply("resize-antialias-to-matmul", text, "10.15", feeds, exact=False)
    assert outcome.changed and "Resize" not in [n.op_type for n in res.graph.node]


@pytest.mark.parametrize("text,why", [
    ("""g (float[1,4,8,8] x) => (float[1,2,4,4] y) <float[4] s = {1.0, 0.5, 0.5, 0.5}> { y = Resize<mode = "linear", antialias = 1>(x, , s) }""",
     "only the last two axes"),
    ("""g (float[1,1,H,8] x) => (float[1,1,?,4] y) <float[4] s = {1.0, 1.0, 0.5, 0.5}> { y = Resize<mode = "linear", antialias = 1>(x, , s) }""",
     "not static"),
    ("""g (float[1,1,8,8] x, float[4] s) => (float[1,1,?,?] y) { y = Resize<mode = "linear", antialias = 1>(x, , s) }""",
     "not constant"),
    ("""g (float[1,1,8,8] x) => (float[1,1,4,4] y) <float[4] s = {1.0, 1.0, 0.5, 0.5}> { y = Resize<mode = "linear">(x, , s) }""",
     "no Resize with antialias=1"),
    ("""g (float[1,1,8,8] x) => (float[1,1,4,4] y) <float[4] s = {1.0, 1.0, 0.5, 0.5}> { y = Resize<mode = "nearest", antialias = 1>(x, , s) }""",
     "linear and cubic only"),
])
def test_antialiased_resize_that_is_not_a_matmul_is_left_alone(text, why):
    outcome, _, _ = apply("resize-antialias-to-matmul", '<ir_version: 9, opset_import: ["" : 19]>\n' + text, "10.15")
    assert not outcome.changed and why in outcome.skipped[0], outcome.skipped


@pytest.mark.parametrize("text,axes", [
    ("""g (float[2,5] x, int64 ax) => (float[2,5] y) { y = CumSum(x, ax) }""", [-2, -1, 0, 1]),
    ("""g (float[2,3,4] x, int64[1] axes) => (float[?,?,?] y) { y = ReduceSum<keepdims = 1>(x, axes) }""", [-3, -1, 0, 1, 2]),
    ("""g (float[2,3,4] x, int64[1] axes) => (float[?,?] y) { y = ReduceMax<keepdims = 0>(x, axes) }""", [-2, 0, 1, 2]),
    ("""g (float[1,4,1] x, int64[1] ax) => (float[?,?] y) { y = Squeeze(x, ax) }""", [-3, -1, 0, 2]),
    ("""g (float[3,4] x, int64[1] ax) => (float[?,?,?] y) { y = Unsqueeze(x, ax) }""", [-3, -1, 0, 1, 2]),
    ("""g (float[4,6] x, int64[1] ax) => (float[?,?] y) <int64[1] st = {1}, int64[1] en = {3}> { y = Slice(x, st, en, ax) }""",
     [-2, -1, 0, 1]),
])
def test_an_op_with_one_runtime_axis_becomes_ifs_over_its_axes(text, axes):
    from onnxdoctor.engine import analyze

    opset = 18 if "ReduceMax" in text else 14
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n' + text)
    onnx.checker.check_model(model, full_check=True)
    before = [f for f in _errors(model, "8.6") + _errors(model, "10.15") if f.code == "TRT122"]
    assert before and all(f.fix and f.fix.rewrite == "runtime-axis-to-if" for f in before)
    outcome = get_rewrite("runtime-axis-to-if").apply(model, RewriteContext(target=Target.make("10.15")))
    assert outcome.changed
    out = cleaned(outcome.model)
    onnx.checker.check_model(out, full_check=True)
    assert "If" in [n.op_type for n in out.graph.node]
    x = np.random.default_rng(0).standard_normal([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim])
    axis_input = model.graph.input[1]
    for a in axes:  # every axis the original accepts
        value = np.array(a if not axis_input.type.tensor_type.shape.dim else [a], np.int64)
        feeds = {"x": x.astype(np.float32), axis_input.name: value}
        ref, got = prove.run(model, feeds), prove.run(out, feeds)
        np.testing.assert_array_equal(got["y"], ref["y"])
    for trt in ("8.6", "10.15"):
        assert not _errors(out, trt), [(f.code, f.message) for f in _errors(out, trt)]
    assert not [f for f in analyze(from_proto(out), Target.make("10.15"), all_rules()) if f.code == "TRT141"]


@pytest.mark.parametrize("text,why", [
    ("""g (float[2,3] x) => (float[2,1] y) <int64[1] axes = {1}> { y = ReduceSum<keepdims = 1>(x, axes) }""", "is a constant"),
    ("""g (float[2,3,4] x, int64[2] axes) => (float[?,?,?] y) { y = ReduceSum<keepdims = 1>(x, axes) }""", "exactly one value"),
    ("""g (x, int64[1] axes) => (y) { y = ReduceSum<keepdims = 1>(x, axes) }""", "rank is unknown"),
    ("""g (float[2,3] x, int64[1] ax) => (float[?,?] y) { y = Squeeze(x, ax) }""", "no axis of length 1"),
])
def test_an_op_whose_axes_are_not_one_runtime_value_is_left_alone(text, why):
    model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 14]>\n' + text)
    outcome = get_rewrite("runtime-axis-to-if").apply(model, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed and any(why in s for s in outcome.skipped), outcome.skipped


# ---------------------------------------------------------------- deform-conv-3d-to-gathers

def _deform3d(x_shape, w_shape, out, *, group=1, offset_group=1, strides=(1, 1, 1), dilations=(1, 1, 1),
              pads=(0,) * 6, bias=False, mask=False) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    k = w_shape[2:]
    kk = int(np.prod(k))
    n = x_shape[0]
    ins = [("x", x_shape), ("w", w_shape), ("off", [n, offset_group * kk * 3, *out])]
    if bias or mask:
        ins.append(("b", [w_shape[0]]) if bias else ("", None))
    if mask:
        ins.append(("m", [n, offset_group * kk, *out]))
    node = helper.make_node("DeformConv", [name for name, _ in ins], ["y"], kernel_shape=list(k), group=group,
                            offset_group=offset_group, strides=list(strides), dilations=list(dilations), pads=list(pads))
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(nm, TensorProto.FLOAT, s) for nm, s in ins if nm],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, w_shape[0], *out])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    m.ir_version = 9
    return m


def _deform2d_ort(x, w, off, b, m, **attrs) -> np.ndarray:
    from onnx import TensorProto, helper

    names = ["x", "w", "off"] + (["b"] if b is not None else [""] if m is not None else []) + (["m"] if m is not None else [])
    arrays = {"x": x, "w": w, "off": off, "b": b, "m": m}
    g = helper.make_graph([helper.make_node("DeformConv", names, ["y"], **attrs)], "g",
                          [helper.make_tensor_value_info(nm, TensorProto.FLOAT, list(arrays[nm].shape)) for nm in names if nm],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    return prove.run(model, {nm: arrays[nm] for nm in names if nm})["y"]


@pytest.mark.parametrize("group,offset_group,bias,mask", [(1, 1, False, False), (2, 1, True, False), (1, 2, False, True),
                                                          (2, 2, True, True)])
def test_deform_conv_3d_with_depth_kernel_1_is_2d_deform_conv_per_plane(group, offset_group, bias, mask):
    """A 3-D DeformConv whose kernel is 1 deep and whose depth offsets are 0 samples each depth plane on
    its own: ONNX Runtime's 2-D DeformConv, plane by plane, is an oracle independent of onnxdoctor's."""
    rng = np.random.default_rng(group * 4 + offset_group)
    n, c, oc, d, h, w_ = 2, 4, 4, 3, 6, 7
    kh, kw = 2, 3
    strides, dil, pads = (1, 1, 2), (1, 2, 1), (0, 1, 0, 0, 0, 1)
    oh = (h + 1 + 0 - dil[1] * (kh - 1) - 1) // strides[1] + 1
    ow = (w_ + 0 + 1 - dil[2] * (kw - 1) - 1) // strides[2] + 1
    out = [d, oh, ow]
    model = _deform3d([n, c, d, h, w_], [oc, c // group, 1, kh, kw], out, group=group, offset_group=offset_group,
                      strides=strides, dilations=dil, pads=pads, bias=bias, mask=mask)
    kk = kh * kw
    off = (rng.standard_normal((n, offset_group, kk, 3, *out)) * 1.7).astype(np.float32)
    off[:, :, :, 0] = 0.0  # no depth offset
    feeds = {"x": rng.standard_normal((n, c, d, h, w_)).astype(np.float32),
             "w": rng.standard_normal((oc, c // group, 1, kh, kw)).astype(np.float32),
             "off": off.reshape(n, -1, *out)}
    if bias:
        feeds["b"] = rng.standard_normal(oc).astype(np.float32)
    if mask:
        feeds["m"] = rng.random((n, offset_group * kk, *out)).astype(np.float32)
    outcome = get_rewrite("deform-conv-3d-to-gathers").apply(model, RewriteContext(target=Target.make("8.6")))
    assert outcome.changed, outcome.skipped
    result = outcome.model
    onnx.checker.check_model(result, full_check=True)
    assert "DeformConv" not in {nd.op_type for nd in result.graph.node}
    got = prove.run(result, feeds)["y"]  # ONNX Runtime runs the rewritten graph
    attrs = dict(kernel_shape=[kh, kw], group=group, offset_group=offset_group, strides=list(strides[1:]),
                 dilations=list(dil[1:]), pads=[pads[1], pads[2], pads[4], pads[5]])
    for z in range(d):
        off2 = off[:, :, :, 1:, z].reshape(n, offset_group * kk * 2, oh, ow)
        m2 = feeds["m"][:, :, z] if mask else None
        plane = _deform2d_ort(feeds["x"][:, :, z], feeds["w"][:, :, 0], np.ascontiguousarray(off2), feeds.get("b"),
                              None if m2 is None else np.ascontiguousarray(m2), **attrs)
        np.testing.assert_allclose(got[:, :, z], plane, atol=1e-4, rtol=1e-4)
    # and with depth offsets too, against onnx.reference with onnxdoctor's N-D DeformConv
    from onnxdoctor import refeval

    feeds["off"] = (rng.standard_normal((n, offset_group * kk * 3, *out)) * 1.7).astype(np.float32)
    np.testing.assert_allclose(prove.run(result, feeds)["y"], refeval.Session(model, "3-D").run(None, feeds)[0],
                               atol=1e-4, rtol=1e-4)
    # every op emitted is one TensorRT 8.6 imports
    kb = knowledge_base()
    assert {nd.op_type for nd in result.graph.node} <= set(kb.release("8.6").ops)


def test_deform_conv_3d_to_gathers_leaves_2d_and_dynamic_alone():
    rw = get_rewrite("deform-conv-3d-to-gathers")
    two_d = onnx.parser.parse_model("""<ir_version: 9, opset_import: ["" : 19]>
        g (float[1,2,5,5] x, float[2,2,3,3] w, float[1,18,3,3] off) => (float[1,2,3,3] y) {
          y = DeformConv<kernel_shape = [3, 3]>(x, w, off)
        }""")
    out = rw.apply(two_d, RewriteContext(target=Target.make("8.6")))
    assert not out.changed and "not a 3-D DeformConv" in out.skipped[0]
    dynamic = onnx.parser.parse_model("""<ir_version: 9, opset_import: ["" : 19]>
        g (float[1,1,D,4,4] x, float[1,1,2,2,2] w, float[1,24,E,3,3] off) => (float[1,1,E,3,3] y) {
          y = DeformConv<kernel_shape = [2, 2, 2]>(x, w, off)
        }""")
    out = rw.apply(dynamic, RewriteContext(target=Target.make("8.6")))
    assert not out.changed and "not all static" in out.skipped[0]
