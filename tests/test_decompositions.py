"""Exact decompositions of op configurations an importer rejects (rewrites/decompositions.py): each
one gives ONNX Runtime's outputs within 1e-5, passes the full ONNX check, emits only ops every
release imports, is reached through the constraint findings that name it, and leaves alone — with
the reason — what it cannot replace exactly. (The repair through `fix` at the flagged release is
in the `fix:` cases of tests/cases/TRT121.yaml, TRT123.yaml and TRT126.yaml.)"""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor import prove
from onnxdoctor.rewrites import RewriteContext, all_rewrites, get_rewrite
from onnxdoctor.rewrites.decompositions import REWRITES
from onnxdoctor.target import Target


def H(opset: int) -> str:
    return f'<ir_version: {10 if opset >= 21 else 9 if opset >= 19 else 8}, opset_import: ["" : {opset}]>\n'


EXACT = [
    pytest.param("batch-norm-training-to-reductions", "10.15", H(15) + """
        g (float[2,3,4,4] x, float[3] s, float[3] b, float[3] m, float[3] v) => (float[2,3,4,4] y, float[3] rm, float[3] rv) {
          y, rm, rv = BatchNormalization<training_mode = 1, momentum = 0.7>(x, s, b, m, v)
        }""", id="batch-norm-running-stats"),
    pytest.param("layer-norm-stats-to-reductions", "10.15", H(17) + """
        g (float[2,3,8] x, float[8] s, float[8] b) => (float[2,3,8] y, float[2,3,1] mu, float[2,3,1] r) {
          y, mu, r = LayerNormalization<epsilon = 1e-3>(x, s, b)
        }""", id="layer-norm-both-stats"),
    pytest.param("layer-norm-stats-to-reductions", "8.6", H(17) + """
        g (float[2,3,8] x, float[8] s) => (float[2,3,8] y, float[2,3,1] r) {
          y, mu, r = LayerNormalization(x, s)
        }""", id="layer-norm-inv-std-only"),
    pytest.param("group-norm-to-reductions", "10.8", H(21) + """
        g (float[2,6,3,3] x, float[6] s, float[6] b) => (float[2,6,3,3] y) {
          y = GroupNormalization<num_groups = 3, epsilon = 1e-4>(x, s, b)
        }""", id="group-norm-21"),
    pytest.param("group-norm-to-reductions", "10.8", H(21) + """
        g (float[2,4,5] x, float[4] s, float[4] b) => (float[2,4,5] y) {
          y = GroupNormalization<num_groups = 2>(x, s, b)
        }""", id="group-norm-21-3d"),
    pytest.param("instance-norm-to-reductions", "8.6", H(17) + """
        g (float[1,2,4,4] x, float[2] sc) => (float[1,2,4,4] y) <float[2] b = {0.5, -1.0}> { y = InstanceNormalization(x, sc, b) }""",
                 id="instance-norm-runtime-scale"),
    pytest.param("instance-norm-to-reductions", "9.3", H(17) + """
        g (float[1,2,2,2,2,3] x) => (float[1,2,2,2,2,3] y) <float[2] sc = {2.0, 0.5}, float[2] b = {0.5, -1.0}> {
          y = InstanceNormalization<epsilon = 1e-3>(x, sc, b)
        }""", id="instance-norm-6d"),
    pytest.param("resize-equivalent-coordinate-mode", "10.15", H(13) + """
        g (float[1,2,5,4] x) => (float[1,2,9,7] y) <float[8] roi = {0, 0, 0, 0, 1, 1, 1, 1}, int64[4] sz = {1, 2, 9, 7}> {
          y = Resize<mode = "cubic", coordinate_transformation_mode = "tf_crop_and_resize">(x, roi, , sz)
        }""", id="resize-tf-crop-full-roi-sizes"),
    pytest.param("resize-equivalent-coordinate-mode", "10.15", H(11) + """
        g (float[1,2,4,4] x) => (float[1,2,8,8] y) <float[8] roi = {0, 0, 0, 0, 1, 1, 1, 1}, float[4] s = {1, 1, 2, 2}> {
          y = Resize<mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize">(x, roi, s)
        }""", id="resize-tf-crop-opset11-keeps-roi"),
    pytest.param("resize-equivalent-coordinate-mode", "10.15", H(13) + """
        g (float[1,2,6,9] x) => (float[1,2,4,6] y) <float[4] s = {1, 1, 0.7, 0.7}> {
          y = Resize<mode = "nearest", coordinate_transformation_mode = "tf_half_pixel_for_nn", nearest_mode = "floor">(x, , s)
        }""", id="resize-tf-half-pixel-floor-downscale"),
    pytest.param("einsum-explicit-form", "8.6", H(17) + """
        g (float[2,5,2,3] a, float[2,5,3,4] b) => (float[2,5,2,4] y) { y = Einsum<equation = "...ij,...jk->...ik">(a, b) }""",
                 id="einsum-ellipsis-two-dims"),
    pytest.param("einsum-explicit-form", "8.6", H(17) + """
        g (float[4,2,3] a, float[4,3,5] b) => (float[4,2,5] y) { y = Einsum<equation = "...ij,...jk">(a, b) }""",
                 id="einsum-ellipsis-implicit-output"),
    pytest.param("einsum-explicit-form", "10.11", H(17) + """
        g (float[3,3] a) => (float y) { y = Einsum<equation = "ii">(a) }""", id="einsum-trace"),
    pytest.param("einsum-explicit-form", "10.11", H(17) + """
        g (float[2,4,3,4] a, float[3,5] b) => (float[2,4,5] y) { y = Einsum<equation = "bkjk,jl->bkl">(a, b) }""",
                 id="einsum-diagonal-non-adjacent"),
    pytest.param("einsum-explicit-form", "10.11", H(17) + """
        g (float[1,2,3] a, float[5,3,4] b) => (float[5,2,4] y) { y = Einsum<equation = "bij,bjk->bik">(a, b) }""",
                 id="einsum-broadcast-batch"),
    pytest.param("einsum-explicit-form", "8.6", H(17) + """
        g (float[1,2,3] a, float[5,3,4] b) => (float[5,2,4] y) { y = Einsum<equation = "...ij,...jk->...ik">(a, b) }""",
                 id="einsum-ellipsis-broadcast"),
    pytest.param("lp-pool-to-pow-average-pool", "10.15", H(18) + """
        g (float[1,2,6,6] x) => (float[1,2,2,2] y) { y = LpPool<kernel_shape = [3, 3], strides = [3, 3], p = 4>(x) }""",
                 id="lp-pool-p4"),
    pytest.param("lp-pool-to-pow-average-pool", "10.15", H(18) + """
        g (float[1,2,5] x) => (float[1,2,3] y) { y = LpPool<kernel_shape = [2], auto_pad = "SAME_UPPER", strides = [2], p = 3>(x) }""",
                 id="lp-pool-1d-same-upper"),
    pytest.param("lstm-bidirectional-split", "10.15", H(14) + """
        g (float[4,2,3] x, float[2,8,3] w, float[2,8,2] r, float[2,16] b, float[2,2,2] h0, float[2,2,2] c0, float[2,6] p)
          => (float[4,2,2,2] y, float[2,2,2] yh, float[2,2,2] yc) {
          y, yh, yc = LSTM<hidden_size = 2, direction = "bidirectional", clip = 3.0,
                           activations = ["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Elu", "Softsign"],
                           activation_alpha = [0.25, 0.8], activation_beta = [0.45]>(x, w, r, b, , h0, c0, p)
        }""", id="lstm-all-inputs-and-outputs"),
    pytest.param("gru-bidirectional-split", "8.6", H(14) + """
        g (float[3,1,2] x, float[2,9,2] w, float[2,9,3] r) => (float[3,2,1,3] y, float[2,1,3] yh) {
          y, yh = GRU<hidden_size = 3, direction = "bidirectional", activations = ["Sigmoid", "Tanh", "Sigmoid", "Relu"]>(x, w, r)
        }""", id="gru-y-and-yh"),
]


@pytest.mark.parametrize(("rewrite", "release", "text"), EXACT)
def test_exact_decomposition(rewrite, release, text):
    model = onnx.parser.parse_model(text)
    before = [f for f in onnxdoctor.check(model, trt=release, config=False).findings
              if f.fix is not None and f.fix.rewrite == rewrite]
    assert before, f"no finding names {rewrite} on {release}"
    outcome = get_rewrite(rewrite).apply(model, RewriteContext(target=Target.make(release)))
    assert outcome.changed, outcome.skipped
    result = outcome.model
    onnx.checker.check_model(result, full_check=True)
    assert [o.name for o in result.graph.output] == [o.name for o in model.graph.output]
    kb = Target.make(release).kb
    emitted = {n.op_type for n in result.graph.node}
    for v in kb.versions:
        assert not emitted - set(kb.release(v).ops), f"{rewrite} emits {emitted - set(kb.release(v).ops)}, not imported by {v}"
    feeds = prove.generate_inputs(model, seed=11)
    feeds = {k: (np.abs(v) + 0.5 if k in ("v",) else v) for k, v in feeds.items()}
    proof = prove.compare(prove.run(model, feeds), prove.run(result, feeds), atol=1e-5, rtol=1e-5)
    assert proof.passed, proof.summary()
    after = [f for f in onnxdoctor.check(result, trt=release, config=False).findings if str(f.severity) == "error"]
    assert not after, [f.message for f in after]


@pytest.mark.parametrize(
    ("rewrite", "text", "reason"),
    [
        pytest.param("batch-norm-training-to-reductions", H(15) + """
            g (float[2,3,4] x, float[3] s, float[3] b, float[3] m, float[3] v) => (float[2,3,4] y) {
              y = BatchNormalization(x, s, b, m, v)
            }""", "no BatchNormalization with training_mode=1 node", id="batch-norm-inference"),
        pytest.param("batch-norm-training-to-reductions", H(15) + """
            g (x, float[3] s, float[3] b, float[3] m, float[3] v) => (y) {
              y, rm, rv = BatchNormalization<training_mode = 1>(x, s, b, m, v)
            }""", "rank is unknown", id="batch-norm-unknown-rank"),
        pytest.param("layer-norm-stats-to-reductions", H(17) + """
            g (x, float[8] s) => (y, mu) { y, mu = LayerNormalization<axis = 1>(x, s) }""",
                     "rank is unknown", id="layer-norm-positive-axis-unknown-rank"),
        pytest.param("instance-norm-to-reductions", H(17) + """
            g (float[1,2,4,4] x) => (float[1,2,4,4] y) <float[2] sc = {1.0, 2.0}, float[2] b = {0.0, 1.0}> { y = InstanceNormalization(x, sc, b) }""",
                     "every importer takes it", id="instance-norm-constant-4d"),
        pytest.param("group-norm-to-reductions", H(18) + """
            g (float[1,4,2,2] x, float[2] s, float[2] b) => (float[1,4,2,2] y) { y = GroupNormalization<num_groups = 2>(x, s, b) }""",
                     "before opset 21", id="group-norm-18"),
        pytest.param("resize-equivalent-coordinate-mode", H(13) + """
            g (float[1,1,4,4] x) => (float[1,1,8,8] y) <float[8] roi = {0, 0, 0.25, 0.25, 1, 1, 0.75, 0.75}, float[4] s = {1, 1, 2, 2}> {
              y = Resize<mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize">(x, roi, s)
            }""", "does not cover the whole input", id="resize-crop-roi"),
        pytest.param("resize-equivalent-coordinate-mode", H(13) + """
            g (float[1,1,4,4] x, float[8] roi) => (float[1,1,8,8] y) <float[4] s = {1, 1, 2, 2}> {
              y = Resize<mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize">(x, roi, s)
            }""", "roi is not a constant", id="resize-runtime-roi"),
        pytest.param("resize-equivalent-coordinate-mode", H(19) + """
            g (float[1,1,3,3] x) => (float[1,1,4,4] y) <float[4] s = {1, 1, 1.5, 1.5}> {
              y = Resize<mode = "linear", coordinate_transformation_mode = "half_pixel_symmetric">(x, , s)
            }""", "not exactly input size * scale", id="resize-half-pixel-symmetric-fractional"),
        pytest.param("resize-equivalent-coordinate-mode", H(13) + """
            g (float[1,1,4,4] x) => (float[1,1,1,8] y) <float[8] roi = {0, 0, 0, 0, 1, 1, 1, 1}, int64[4] sz = {1, 1, 1, 8}> {
              y = Resize<mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize">(x, roi, , sz)
            }""", "resized to one element", id="resize-to-one-element"),
        pytest.param("einsum-explicit-form", H(17) + """
            g (float[2,4,3] a, float[3,5] b) => (float[2,4,5] y) { y = Einsum<equation = "bij,jl->bil">(a, b) }""",
                     "no ellipsis, diagonal or broadcasting", id="einsum-plain"),
        pytest.param("einsum-explicit-form", H(17) + """
            g (float[N,N] a) => (float[N] y) { y = Einsum<equation = "ii->i">(a) }""",
                     "size of the diagonal", id="einsum-dynamic-diagonal"),
        pytest.param("lp-pool-to-pow-average-pool", H(18) + """
            g (float[1,1,5,5] x) => (float[1,1,3,3] y) { y = LpPool<kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1, p = 3>(x) }""",
                     "ceil_mode", id="lp-pool-ceil-mode"),
        pytest.param("lstm-bidirectional-split", H(14) + """
            g (float[4,2,3] x, float[2,8,3] w, float[2,8,2] r) => (float[4,2,2,2] y) {
              y = LSTM<hidden_size = 2, direction = "bidirectional", activations = ["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Tanh"]>(x, w, r)
            }""", "same activations", id="lstm-same-activations"),
    ],
)
def test_left_alone_with_the_reason(rewrite, text, reason):
    model = onnx.parser.parse_model(text)
    outcome = get_rewrite(rewrite).apply(model, RewriteContext(target=Target.make("10.15")))
    assert not outcome.changed
    assert outcome.model is model
    assert any(reason in s for s in outcome.skipped), outcome.skipped


def test_every_decomposition_is_named_by_a_constraint_and_every_constraint_fix_exists():
    kb = Target.make("10.15").kb
    named = {c.params["fix"] for c in kb.constraints if "fix" in c.params}
    assert named <= {r.name for r in all_rewrites()}, named - {r.name for r in all_rewrites()}
    assert {cls.name for cls in REWRITES} <= named
