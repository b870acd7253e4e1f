"""`op-to-function-body` and `inline-local-functions` (rewrites/functions.py): an op replaced by the
function body ONNX defines for it gives ONNX Runtime's outputs within 1e-5 (ONNX Runtime runs its
own kernel for the original), passes the full check, and works inside control-flow bodies; what
ONNX cannot build a body for is left alone with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import onnxdoctor
from onnxdoctor import prove
from onnxdoctor.fix import FixOptions, fix_model
from onnxdoctor.rewrites import RewriteContext, get_rewrite
from onnxdoctor.target import Target


def H(opset: int) -> str:
    return f'<ir_version: 10, opset_import: ["" : {opset}]>\n'


CASES = [
    pytest.param(H(23) + """g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v) => (float[1,2,4,8] y) {
        y = Attention(q, k, v) }""", id="attention"),
    pytest.param(H(23) + """g (float[1,4,3,8] q, float[1,2,3,8] k, float[1,2,3,8] v, float[1,2,5,8] pk, float[1,2,5,8] pv)
        => (float[1,4,3,8] y, float[1,2,8,8] nk, float[1,2,8,8] nv) {
        y, nk, nv = Attention<is_causal = 1>(q, k, v, , pk, pv) }""", id="attention-gqa-causal-kv-cache"),
    pytest.param(H(23) + """g (float[2,4,16] q, float[2,6,16] k, float[2,6,16] v, bool[4,6] m) => (float[2,4,16] y) {
        y = Attention<q_num_heads = 2, kv_num_heads = 2>(q, k, v, m) }""", id="attention-3d-bool-mask"),
    pytest.param(H(23) + """g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v, float[1,1,4,6] m) => (float[1,2,4,8] y) {
        y = Attention<scale = 0.5, softcap = 3.0>(q, k, v, m) }""", id="attention-float-mask-softcap-scale"),
    pytest.param(H(23) + """g (float[1,2,4,8] x, float[16,4] c, float[16,4] s, int64[1,4] p) => (float[1,2,4,8] y) {
        y = RotaryEmbedding(x, c, s, p) }""", id="rotary"),
    pytest.param(H(23) + """g (float[1,4,12] x, float[16,2] c, float[16,2] s, int64[1,4] p) => (float[1,4,12] y) {
        y = RotaryEmbedding<num_heads = 2, interleaved = 1, rotary_embedding_dim = 4>(x, c, s, p) }""",
                 id="rotary-3d-interleaved-partial"),
    pytest.param(H(18) + """g (float[2,6,5] x) => (float[2,4,8] y) <int64[2] sh = {4, 8}> {
        y = CenterCropPad<axes = [1, 2]>(x, sh) }""", id="center-crop-pad-18"),
    pytest.param(H(21) + """g (float[3,7,4] x) => (float[5,3,4] y) <int64[3] sh = {5, 3, 4}> {
        y = CenterCropPad(x, sh) }""", id="center-crop-pad-body-from-older-opset"),
    pytest.param(H(13) + """g (float[3,5] x, int64[3] t, float[5] w) => (float y) {
        y = NegativeLogLikelihoodLoss<reduction = "mean", ignore_index = 1>(x, t, w) }""", id="nll-weighted"),
    pytest.param(H(13) + """g (float[3,5,2] x, int64[3,2] t) => (float[3,2] y) {
        y = SoftmaxCrossEntropyLoss<reduction = "none">(x, t) }""", id="softmax-cross-entropy"),
]


def _feeds(model):
    feeds = prove.generate_inputs(model, seed=3)
    for name in ("p", "t"):
        if name in feeds:
            feeds[name] = np.abs(feeds[name]) % 3
    if "m" in feeds and feeds["m"].dtype == bool:
        feeds["m"][..., 0] = True  # no fully masked row
    return feeds


@pytest.mark.parametrize("text", CASES)
def test_function_body_matches_onnx_runtime(text):
    model = onnx.parser.parse_model(text)
    op = model.graph.node[-1].op_type
    outcome = get_rewrite("op-to-function-body").apply(model, RewriteContext(target=Target.make("8.6")))
    assert outcome.changed, outcome.skipped
    result = outcome.model
    assert op not in {n.op_type for n in result.graph.node}
    assert not result.functions and all(o.domain in ("", "ai.onnx") for o in result.opset_import)
    onnx.checker.check_model(result, full_check=True)
    feeds = _feeds(model)
    proof = prove.compare(prove.run(model, feeds), prove.run(result, feeds), atol=1e-5, rtol=1e-5)
    assert proof.passed, proof.summary()


def test_function_body_inside_an_if_branch():
    model = onnx.parser.parse_model(H(23) + """
        g (bool c, float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v) => (float[1,2,4,8] y) {
          y = If(c) <then_branch = t () => (float[1,2,4,8] a) { a = Attention(q, k, v) },
                     else_branch = e () => (float[1,2,4,8] b) { b = Identity(q) }>
        }""")
    result = fix_model(model, FixOptions(trt="10.13"))
    assert "op-to-function-body" in [s.rewrite for s in result.steps if s.status == "applied"]
    then = next(a.g for a in result.model.graph.node[0].attribute if a.name == "then_branch")
    assert "Attention" not in {n.op_type for n in then.node} and "Softmax" in {n.op_type for n in then.node}
    assert not [f for f in result.after if str(f.severity) == "error"], [f.message for f in result.after]
    assert result.proof.passed, result.proof.summary()
    onnx.checker.check_model(result.model, full_check=True)


def test_unknown_input_types_are_left_alone_with_the_reason():
    model = onnx.parser.parse_model(H(23) + "g (q, k, v) => (y) { y = Attention(q, k, v) }")
    outcome = get_rewrite("op-to-function-body").apply(model, RewriteContext(target=Target.make("8.6")))
    assert not outcome.changed and outcome.model is model
    assert any("ONNX cannot build its function body" in s for s in outcome.skipped), outcome.skipped


@pytest.mark.parametrize(("release", "named"), [("10.13", True), ("10.14", False)])
def test_attention_finding_names_the_body_only_where_needed(release, named):
    model = onnx.parser.parse_model(H(23) + """g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v) => (float[1,2,4,8] y) {
        y = Attention(q, k, v) }""")
    fixes = {f.fix.rewrite for f in onnxdoctor.check(model, trt=release, config=False).findings if f.fix}
    assert ("op-to-function-body" in fixes) == named
