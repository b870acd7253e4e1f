"""What `fix` spends on shape folding: ONNX Runtime's symbolic shape inference (and sympy's import) only
where it could know more than ONNX's own inference; its Resize handler without sympy.simplify."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper

from onnxdoctor import prove
from onnxdoctor.model import from_proto
from onnxdoctor.rewrites.shapes import (
    _inferred_with_reshape_dims,
    _reshape_dims_of,
    _symbolic_may_help,
    _symbolic_shape_inference,
    _symbolic_types,
)

from .test_simplify import _positions

H = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _parse(text: str, **inits: np.ndarray) -> onnx.ModelProto:
    m = onnx.parser.parse_model(H + text)
    m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    onnx.checker.check_model(m, full_check=True)
    return m


def _typed(m: onnx.ModelProto):
    view = from_proto(m, infer_shapes=False)
    view.attach_types(onnx.shape_inference.infer_shapes(m, data_prop=True))
    return view


# Reshape(x, [Shape(x)[0], 2, 4]): ONNX's inference knows every element (`batch`, 2, 4)
STATIC_CHAIN = """g (float[batch,8] x) => (float[batch,2,4] y) {
    s = Shape(x)
    i0 = Constant<value = int64 {0}>()
    b = Gather(s, i0)
    ax = Constant<value = int64[1] {0}>()
    bu = Unsqueeze(b, ax)
    tail = Constant<value = int64[2] {2, 4}>()
    shape = Concat<axis = 0>(bu, tail)
    y = Reshape(x, shape)
}"""

# _positions (from test_simplify): the same Reshape of h = x + a slice of a table to the sequence length:
# ONNX's inference loses h's sequence dim, ONNX Runtime's names it.


def _fix_in_fresh_process(tmp_path, model: onnx.ModelProto, output: str | None = None) -> dict:
    """Fix `model` in a new interpreter: (the shape the result's Reshape reads, the one making
    `output` if given, whether sympy was imported)."""
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(model, src)
    code = textwrap.dedent(f"""
        import json, sys
        import onnx
        from onnx import numpy_helper
        from onnxdoctor import api
        api.fix({str(src)!r}, {str(out)!r}, rules="default", trt="10.15")
        m = onnx.load({str(out)!r})
        inits = {{t.name: numpy_helper.to_array(t).tolist() for t in m.graph.initializer}}
        reshape = next(n for n in m.graph.node if n.op_type == "Reshape" and {output!r} in (None, n.output[0]))
        print(json.dumps({{"shape": inits.get(reshape.input[1]), "sympy": "sympy" in sys.modules}}))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_fix_folds_a_chain_onnx_inference_knows_without_importing_sympy(tmp_path):
    got = _fix_in_fresh_process(tmp_path, _parse(STATIC_CHAIN))
    assert got == {"shape": [0, 2, 4], "sympy": False}


def test_fix_imports_sympy_where_the_symbolic_inference_is_needed(tmp_path):
    # the other side of the test above: here only the symbolic inference finds h's dims
    got = _fix_in_fresh_process(tmp_path, _positions())
    assert got == {"shape": [0, 0, 2, 4], "sympy": True}


# r = Reshape(x, [-1, 16, 1]): ONNX's inference gives r's first dim a name of its own, so the second
# Reshape's computed shape [n, 4, 4] is not known to start with r's dim; -1 = n * 16 / 16 = n says it is
# (magika's one-hot, a jax2tf export). Then a Slice of the whole first axis (end 10**9, as TF writes "to
# the end") keeps it.
FLATTENED_BATCH = """g (float[n,16] x) => (float[n,4,4] y, float[n,16] z) {
    c = Constant<value = int64[3] {-1, 16, 1}>()
    r = Reshape(x, c)
    s = Shape(x)
    st = Constant<value = int64[1] {0}>()
    en = Constant<value = int64[1] {1}>()
    b = Slice(s, st, en)
    tail = Constant<value = int64[2] {4, 4}>()
    shape = Concat<axis = 0>(b, tail)
    y = Reshape(r, shape)
    big = Constant<value = int64[1] {1000000000}>()
    whole = Slice(x, st, big, st)
    tail2 = Constant<value = int64[1] {16}>()
    shape2 = Concat<axis = 0>(b, tail2)
    z = Reshape(whole, shape2)
}"""


def test_reshape_minus_one_names_the_input_dim_it_equals():
    assert _reshape_dims_of(["n", 2048], [-1, 2048, 1], False) == "n"
    assert _reshape_dims_of(["n", 2048], [-1, 1024], False) is None  # 2n: not one dim
    assert _reshape_dims_of(["n", "s", 64], [0, -1, 64], False) == "s"  # 0 copies n
    assert _reshape_dims_of(["n", "s", 64], [0, -1], False) is None  # s * 64
    assert _reshape_dims_of(["n", "s", 64], [0, -1, 64], True) is None  # allowzero: 0 is a zero dim
    assert _reshape_dims_of([6, 8], [-1, 4], False) == 12
    assert _reshape_dims_of(["n", None], [-1, 8], False) is None  # an unknown dim
    assert _reshape_dims_of(["n", 8], [4, 8], False) is None  # no -1
    assert _reshape_dims_of(["n", "m"], [-1, 4], False) is None  # n * m / 4


def test_onnx_inference_types_a_reshape_minus_one_and_a_whole_slice_with_the_input_dim():
    m = _parse(FLATTENED_BATCH)
    plain = onnx.shape_inference.infer_shapes(m, data_prop=True)
    typed = _inferred_with_reshape_dims(m)

    def dims(model, name):
        vi = next(v for v in model.graph.value_info if v.name == name)
        return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]

    assert dims(plain, "r")[0] != "n" and dims(plain, "whole")[0] != "n"  # what the refinement adds
    assert dims(typed, "r") == ["n", 16, 1]
    assert dims(typed, "whole") == ["n", 16]
    assert not _symbolic_may_help(_typed_by(m, typed), m)


def _typed_by(m: onnx.ModelProto, typed: onnx.ModelProto):
    view = from_proto(m, infer_shapes=False)
    view.attach_types(typed)
    return view


def test_fix_folds_behind_a_reshape_minus_one_without_importing_sympy(tmp_path):
    m = _parse(FLATTENED_BATCH)
    assert _fix_in_fresh_process(tmp_path, m, "y") == {"shape": [0, 4, 4], "sympy": False}
    assert _fix_in_fresh_process(tmp_path, m, "z")["shape"] == [0, 16]


def test_symbolic_may_help_judges_what_onnx_inference_left():
    m = _parse(STATIC_CHAIN)
    assert not _symbolic_may_help(_typed(m), m)
    m = _positions()
    assert _symbolic_may_help(_typed(m), m)  # h's sequence dim is unknown to ONNX's inference


def test_symbolic_may_help_follows_pytorchs_expand_shape():
    # PyTorch exports expand(batch, -1, -1) as Expand(t, Where(Equal(shape, -1), ones, shape)):
    # [batch, 1, 4] against t's [1, 1, 4], all numbers and input dims, so nothing for symbolic inference
    m = _parse("""g (float[batch,3] x) => (float[batch,1,4] y) {
        s = Shape(x)
        i0 = Constant<value = int64[1] {0}>()
        b = Gather(s, i0)
        rest = Constant<value = int64[2] {-1, -1}>()
        shape = Concat<axis = 0>(b, rest)
        three = Constant<value = int64[1] {3}>()
        ones = ConstantOfShape<value = int64[1] {1}>(three)
        minus = Constant<value = int64 {-1}>()
        neg = Mul(ones, minus)
        eq = Equal(shape, neg)
        fixed = Where(eq, ones, shape)
        y = Expand(t, fixed)
    }""", t=np.ones((1, 1, 4), np.float32))
    assert not _symbolic_may_help(_typed(m), m)
    feeds = {"x": np.ones((3, 3), np.float32)}
    assert prove.run(m, feeds)["y"].shape == (3, 1, 4)


def test_symbolic_may_help_when_the_element_count_could_make_a_dim_the_inputs():
    # z = Relu(Reshape(x, [-1])): ONNX names z's dim afresh; the element count makes it 4*batch, never
    # `batch`, so a Reshape of z to [batch, 4] copies nothing: no need for the symbolic inference
    m = _flat_then_reshape(4)
    view = _typed(m)
    assert not _symbolic_may_help(view, m)
    # ... but with z of [n] where n could be `batch` (a 1-element-per-row reshape), it may
    m = _flat_then_reshape(1)
    assert _symbolic_may_help(_typed(m), m)


def _flat_then_reshape(cols: int) -> onnx.ModelProto:
    """z = Relu(Reshape(x, [-1])) for x of [batch, cols], then Reshape(z, [Shape(x)[0], cols])."""
    return _parse(f"""g (float[batch,{cols}] x) => (float[batch,{cols}] y) {{
        flat = Constant<value = int64[1] {{-1}}>()
        z0 = Reshape(x, flat)
        z = Relu(z0)
        s = Shape(x)
        i0 = Constant<value = int64[1] {{0}}>()
        b = Gather(s, i0)
        cols = Constant<value = int64[1] {{{cols}}}>()
        shape = Concat<axis = 0>(b, cols)
        y = Reshape(z, shape)
    }}""")


RESIZE = """g (float[batch,3,h,w] x) => (float[batch,3,H,W] y) {
    a = Resize<mode = "nearest">(x, roi, up)
    b = MaxPool<kernel_shape = [2, 2], strides = [2, 2]>(a)
    c = Resize<mode = "nearest">(b, roi, up)
    y = Resize<mode = "nearest">(c, roi, %s)
}"""


def _dims(m: onnx.ModelProto) -> dict[str, list]:
    return {vi.name: [d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim]
            for vi in list(m.graph.value_info) + list(m.graph.output)}


def _at(dim, values: dict[str, int]) -> int:
    import sympy

    return dim if isinstance(dim, int) else int(sympy.sympify(dim).subs(values))


def test_resize_types_as_onnxruntimes_own_handler():
    # the same dims as its handler (which keeps float scales: floor(2.0*h)), exact rationals instead
    inits = {"roi": np.zeros(0, np.float32), "up": np.array([1, 1, 2, 2], np.float32),
             "half": np.array([1, 1, 0.5, 0.5], np.float32), "odd": np.array([1, 1, 1.5, 1.5], np.float32)}
    for last in ("half", "up", "odd"):  # odd: not k or 1/k, its handler's own path
        m = _parse(RESIZE % last, **inits)
        ours, theirs = _dims(_symbolic_types(m)), _dims(_symbolic_shape_inference().infer_shapes(m))
        assert ours.keys() == theirs.keys()
        for values in ({"batch": 1, "h": 7, "w": 8}, {"batch": 3, "h": 33, "w": 1}):
            for name in ours:
                assert [_at(d, values) for d in ours[name]] == [_at(d, values) for d in theirs[name]], (last, name)
        feeds = {"x": np.ones((2, 3, 7, 9), np.float32)}
        y = prove.run(m, feeds)["y"]
        assert list(y.shape) == [_at(d, {"batch": 2, "h": 7, "w": 9}) for d in ours["y"]]
    # up, pool, up, half: h again (its handler leaves floor(0.5*floor(2.0*floor(floor(2.0*h)/2))))
    assert _dims(_symbolic_types(_parse(RESIZE % "half", **inits)))["y"] == ["batch", 3, "h", "w"]


def test_weights_in_constant_nodes_go_to_the_store_before_the_first_rewrite(monkeypatch):
    # paddle2onnx puts every weight in a Constant node: the rewrites get the graph without those bytes
    # (a stub initializer), the findings before are the model's own (GRF410 for that Constant), and
    # the result has the weight back, as an initializer (as the first rewrite's cleanup stores it)
    import onnxdoctor.rewrites as rewrites_pkg
    from onnxdoctor.fix import FixOptions, fix_model
    from onnxdoctor.rewrites.hygiene import DedupeNodes
    from onnxdoctor.weights import WeightStore

    seen = []

    class Recording(DedupeNodes):
        def apply(self, model, ctx):
            seen.append([(t.name, WeightStore.key_of(t) is not None, len(t.raw_data)) for t in model.graph.initializer
                         if t.name == "w"] + [n.op_type for n in model.graph.node if n.output[0] == "w"])
            return super().apply(model, ctx)

    table = tuple(Recording() if r.name == "dedupe-nodes" else r for r in rewrites_pkg.all_rewrites())
    monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((256, 256)).astype(np.float32)
    m = onnx.parser.parse_model(H + """g (float[2,256] x) => (float[2,256] y) {
        w = Constant<value = float[1] {0}>()
        one = Constant<value = float[1] {1}>()
        h = MatMul(x, w)
        a = Relu(h)
        b = Relu(h)
        s = Add(a, b)
        y = Mul(s, one)
    }""")
    m.graph.node[0].attribute[0].t.CopyFrom(numpy_helper.from_array(weight, "w"))
    onnx.checker.check_model(m, full_check=True)
    res = fix_model(m, FixOptions(trt="10.15"))
    assert any(f.code == "GRF410" for f in res.before)
    assert seen and seen[0] == [("w", True, 0)]  # a stub: the bytes are in the store
    w = next(t for t in res.model.graph.initializer if t.name == "w")
    assert np.array_equal(numpy_helper.to_array(w), weight)
    assert [n.op_type for n in res.model.graph.node] == ["MatMul", "Relu", "Add"]
    assert res.proof.passed
    feeds = {"x": rng.standard_normal((2, 256)).astype(np.float32)}
    np.testing.assert_allclose(prove.run(res.model, feeds)["y"], prove.run(m, feeds)["y"], rtol=1e-6)


def test_big_constants_to_initializers_moves_only_big_tensors_not_outputs():
    from onnxdoctor.rewrites._gs import big_constants_to_initializers
    from onnxdoctor.weights import is_big

    m = onnx.parser.parse_model(H + """g (float[2,256] x) => (float[256,256] w2, float[2,256] y) {
        w = Constant<value = float[1] {0}>()
        w2 = Constant<value = float[1] {0}>()
        k = Constant<value = float[1] {2}>()
        h = MatMul(x, w)
        y = Mul(h, k)
    }""")
    big = numpy_helper.from_array(np.ones((256, 256), np.float32))
    for n in m.graph.node[:2]:
        n.attribute[0].t.CopyFrom(big)
    out = big_constants_to_initializers(m, is_big)
    assert [n.output[0] for n in out.graph.node] == ["w2", "k", "h", "y"]  # w2 is a graph output: kept
    assert [t.name for t in out.graph.initializer] == ["w"]
    assert np.array_equal(numpy_helper.to_array(out.graph.initializer[0]), np.ones((256, 256), np.float32))
    assert len(m.graph.node) == 5  # the given model is not modified
    onnx.checker.check_model(out, full_check=True)
    assert big_constants_to_initializers(out, is_big) is out


def test_fold_batch_norm_gets_only_the_weights_it_folds(monkeypatch):
    # a 256x256 MatMul weight that no normalization follows stays in the store while fold-batch-norm runs
    import onnxdoctor.rewrites as rewrites_pkg
    from onnxdoctor.fix import FixOptions, fix_model
    from onnxdoctor.rewrites.simplify import FoldBatchNorm
    from onnxdoctor.weights import WeightStore

    given = []

    class Recording(FoldBatchNorm):
        def apply(self, model, ctx):
            given.append({t.name: WeightStore.key_of(t) is not None for t in model.graph.initializer})
            return super().apply(model, ctx)

    table = tuple(Recording() if r.name == "fold-batch-norm" else r for r in rewrites_pkg.all_rewrites())
    monkeypatch.setattr(rewrites_pkg, "all_rewrites", lambda: table)
    rng = np.random.default_rng(3)
    m = onnx.parser.parse_model(H + """g (float[1,256,4,4] x, float[2,256] t) => (float[1,256,4,4] y, float[2,256] z) {
        c = Conv(x, w)
        y = BatchNormalization(c, s, b, mu, v)
        z = MatMul(t, big)
    }""")
    m.graph.initializer.extend(
        [numpy_helper.from_array(rng.standard_normal((256, 256, 1, 1)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.standard_normal((256, 256)).astype(np.float32) / 16, "big")]
        + [numpy_helper.from_array(rng.uniform(0.5, 2, 256).astype(np.float32), k) for k in ("s", "b", "mu", "v")])
    res = fix_model(m, FixOptions(trt="10.15"))
    assert given and given[0]["w"] is False and given[0]["big"] is True  # w's bytes given, big's left stored
    assert [n.op_type for n in res.model.graph.node] == ["Conv", "MatMul"]
    assert res.proof.passed
    feeds = {"x": rng.standard_normal((1, 256, 4, 4)).astype(np.float32), "t": rng.standard_normal((2, 256)).astype(np.float32)}
    got, want = prove.run(res.model, feeds), prove.run(m, feeds)
    for k in ("y", "z"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)


def test_a_one_file_result_is_written_from_the_store(tmp_path, monkeypatch):
    # fix -o writes the stored weights from the store (no materialized model, no serialized copy of it):
    # the file parses to exactly the model result.model materializes
    from onnxdoctor import api
    from onnxdoctor.weights import WeightStore

    rng = np.random.default_rng(0)
    m = onnx.parser.parse_model(H + """g (float[2,256] x) => (float[2,1024] y) {
        h = MatMul(x, w)
        a = Relu(h)
        b = Relu(h)
        s = Add(a, b)
        y = Add(s, c)
    }""")
    m.graph.initializer.extend([numpy_helper.from_array(rng.standard_normal((256, 1024)).astype(np.float32), "w"),
                                numpy_helper.from_array(rng.standard_normal(1024).astype(np.float32), "c")])
    src, out = tmp_path / "in.onnx", tmp_path / "out.onnx"
    onnx.save(m, src)
    whole = []
    materialize = WeightStore.materialize
    monkeypatch.setattr(WeightStore, "materialize",
                        lambda self, model, names=None: whole.append(names is None) or materialize(self, model, names))
    res = api.fix(src, out, rules="default", trt="10.15")
    assert res.changed and not any(whole)  # no whole-model materialization before the file is written
    written = onnx.load(out)
    assert written.SerializeToString() == res.model.SerializeToString()
    w = next(t for t in written.graph.initializer if t.name == "w")
    assert not w.external_data and len(w.raw_data) == 256 * 1024 * 4
    feeds = {"x": rng.standard_normal((2, 256)).astype(np.float32)}
    np.testing.assert_allclose(prove.run(written, feeds)["y"], prove.run(m, feeds)["y"], rtol=1e-5, atol=1e-5)



def test_symbolic_types_reads_no_weight_stub():
    # the fix pipeline's weight stubs (onnxdoctor.weights: external data into its store) go to the
    # symbolic inference as inputs of their type: it reads the values an Add takes, a bias too, and a
    # stub's are not in the model (ppocrv5-rec's inference failed on one)
    from onnxdoctor.weights import WeightStore

    m = _parse("""g (float[batch,seq,8] x) => (float[batch,seq,2,4] y) {
        h = Add(x, w)
        s = Shape(h)
        r = Slice(s, zero, two)
        tail = Constant<value = int64[2] {2, 4}>()
        shape = Concat<axis = 0>(r, tail)
        y = Reshape(h, shape)
    }""", w=np.ones((1, 1, 8), np.float32), zero=np.array([0], np.int64), two=np.array([2], np.int64))
    store = WeightStore()
    w = m.graph.initializer[0]
    stub = onnx.TensorProto()
    stub.name, stub.data_type = w.name, w.data_type
    stub.dims.extend(w.dims)
    store._point(stub, store._add(w))  # as `strip` makes a stub of a big weight
    w.CopyFrom(stub)
    typed = _symbolic_types(m)
    assert typed is not None
    assert _dims(typed)["h"] == ["batch", "seq", 8]
    # the stub is an initializer again, not a graph input
    assert [i.name for i in typed.graph.input] == ["x"]
    assert WeightStore.key_of(next(t for t in typed.graph.initializer if t.name == "w")) is not None


def test_symbolic_may_help_rules_out_a_fold_the_input_dims_make_impossible():
    # A Reshape of t [batch, n, 8] to (0, 1, n', 8) with n' = Shape(c)[2], the length a strided Conv
    # gives w (ONNX's inference names it afresh): the fold needs n' to be the 8 at its place. On two
    # probes (w = 64, w = 128) it is 31 and 63: neither the same number twice nor 8, so ONNX Runtime's
    # symbolic inference (n' = floor((w - 3)/2) + 1) could not fold it either, and is not run
    m = _parse("""g (float[batch,8,w] x) => (float[batch,1,n,8] y) {
        c = Conv<strides = [2]>(x, k)
        t = Transpose<perm = [0, 2, 1]>(c)
        s = Shape(c)
        n = Slice(s, two, three)
        shape = Concat<axis = 0>(zero, one, n, eight)
        y = Reshape(t, shape)
    }""", k=np.ones((8, 8, 3), np.float32), two=np.array([2], np.int64), three=np.array([3], np.int64),
        zero=np.array([0], np.int64), one=np.array([1], np.int64), eight=np.array([8], np.int64))
    view = _typed(m)
    t_dims = view.main.type_of("t").shape
    assert isinstance(t_dims[1], str) and not t_dims[1] == "w"  # ONNX's inference: a fresh name
    assert not _symbolic_may_help(view, m)
    feeds = {"x": np.ones((2, 8, 11), np.float32)}
    assert prove.run(m, feeds)["y"].shape == (2, 1, 5, 8)
    # where the element is compared with a dim the probes make equal to it, the inference runs
    assert _symbolic_may_help(_typed(_positions()), _positions())


def test_every_session_onnxdoctor_makes_runs_without_spinning_threads():
    """ONNX Runtime's pool threads busy-wait between operators by default; on a loaded machine that
    takes a core from the other processes (and from the run's own threads). Every session of fix and
    verify (prove.session, the weight store's, with and without stubs) turns it off."""
    from onnxdoctor.weights import WeightStore

    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3] x) => (float[2, 3] y) { y = Relu(x) }""")
    store = WeightStore()
    sessions = [prove.session(model), store.session(model)]
    for sess in sessions:
        so = sess.get_session_options()
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert so.get_session_config_entry("session.inter_op.allow_spinning") == "0"
        assert so.get_session_config_entry("session.disable_prepacking") == "1"
        out = sess.run(None, {"x": np.array([[-1, 2, -3], [4, -5, 6]], np.float32)})[0]
        np.testing.assert_array_equal(out, [[0, 2, 0], [4, 0, 6]])
