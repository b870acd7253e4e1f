"""The shape-inference helper's packed types (_typeinfo.pack_serialized) type every graph exactly as the
inferred model's protos do: on every rule case model (subgraphs, functions, sequences, sparse
tensors included) and the real exported models."""

from __future__ import annotations

import marshal
import random

import onnx
import onnx.parser
import pytest
import yaml

from onnxdoctor import _typeinfo
from onnxdoctor import model as model_mod
from onnxdoctor.engine import analyze
from onnxdoctor.registry import all_rules

from ._fixtures import MODELS


def _case_models():
    from .test_cases import CASES_DIR

    out = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            out.append(pytest.param(case["model"], id=f"{path.stem}-{case['id']}"))
    return out


def _pair(proto: onnx.ModelProto):
    raw = model_mod.from_proto(proto)
    packed = model_mod.from_proto(proto)
    # as the helper packs them: from the inferred model's bytes (the reduced schema for a model of
    # one graph, else the parsed model with the subgraph pre-check)
    serialized = packed.inferred.SerializeToString()
    tables = marshal.loads(marshal.dumps(_typeinfo.pack_serialized(serialized)))
    assert tables == _typeinfo.pack(packed.inferred, serialized) == _typeinfo.pack(packed.inferred)
    model_mod.inference._fill_packed(packed.graphs, tables)
    assert all(not g.types.raw for g in packed.graphs)
    return raw, packed


def _assert_same_types(raw: model_mod.Model, packed: model_mod.Model):
    assert [g.path for g in raw.graphs] == [g.path for g in packed.graphs]
    for a, b in zip(raw.graphs, packed.graphs):
        names = sorted(a.types.names())
        assert names == sorted(b.types.names())
        for name in names:
            assert a.types.kind(name) == b.types.kind(name), name
            assert a.types.elem_type(name) == b.types.elem_type(name), name
            assert a.types.summary(name) == b.types.summary(name), name
            assert a.types.rank(name) == b.types.rank(name), name
            assert a.types.get(name) == b.types.get(name), name
        assert a.type_summary == b.type_summary


@pytest.mark.parametrize("text", _case_models())
def test_packed_types_equal_proto_types_on_case_models(text):
    proto = onnx.parser.parse_model(text)
    raw, packed = _pair(proto)
    _assert_same_types(raw, packed)


@pytest.mark.parametrize("path", sorted((MODELS / "real").glob("*.onnx")) + [MODELS / "example.onnx"],
                         ids=lambda p: p.stem)
def test_packed_types_give_the_same_findings_on_real_models(path):
    raw, packed = _pair(onnx.load(str(path)))
    _assert_same_types(raw, packed)
    for trt in ("8.6", "latest"):
        rules = list(all_rules())
        a = analyze(raw, _target(trt), rules)
        b = analyze(packed, _target(trt), rules)
        assert [f.to_dict() for f in a] == [f.to_dict() for f in b]


def _target(trt):
    from onnxdoctor.api import Settings

    return Settings(trt=trt, select=None, ignore=(), plugins=(), precision="fp16", shapes=(), fail_on="error").target()


def test_graph_order_matches_the_views_with_nested_and_duplicate_named_subgraphs():
    # Two If nodes with the same name: their branches get the same path label; order decides.
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (bool c, float[2] x) => (float[2] y, float[3] z) {
      y = If <then_branch = t1 () => (float[2] a) { a = Relu(x) },
              else_branch = e1 () => (float[2] b) { b = Neg(x) }> (c)
      z = If <then_branch = t2 () => (float[3] a3) { k = Constant<value = float[3] {1,2,3}>() a3 = Identity(k) },
              else_branch = e2 () => (float[3] b3) { k2 = Constant<value = float[3] {4,5,6}>() b3 = Abs(k2) }> (c)
    }
    """
    proto = onnx.parser.parse_model(text)
    for n in proto.graph.node:
        n.name = "same"
    raw, packed = _pair(proto)
    assert len(raw.graphs) == 5
    assert [len(g.nodes) for g in raw.graphs] == [len(gp.node) for gp in _typeinfo.graph_order(raw.inferred)]
    _assert_same_types(raw, packed)
    # the second If's branches are typed with their own tensors (float[3]), not the first's
    assert raw.graphs[3].types.get("a3").shape == (3,) and packed.graphs[3].types.get("a3").shape == (3,)


def test_subgraph_precheck_reads_the_bytes_and_a_missed_subgraph_falls_back_to_inference():
    text = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (bool c, float[2] x) => (float[2] y) {
      y = If <then_branch = t1 () => (float[2] a) { a = Relu(x) },
              else_branch = e1 () => (float[2] b) { b = Neg(x) }> (c)
    }
    """
    with_if = onnx.parser.parse_model(text)
    plain = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { y = Relu(x) }
    """)
    assert _typeinfo.may_have_subgraphs(with_if.SerializeToString())
    assert not _typeinfo.may_have_subgraphs(plain.SerializeToString())
    assert len(_typeinfo.graph_order(with_if, with_if.SerializeToString())) == 3
    assert len(_typeinfo.graph_order(plain, plain.SerializeToString())) == 1
    # Bytes that hide the subgraphs (as an over-long varint would): the tables miss the branches, the
    # checking process refuses them and infers the types itself.
    raw = model_mod.from_proto(with_if)
    short = _typeinfo.pack(raw.inferred, b"")
    assert len(short) == 1
    with pytest.raises(ValueError):
        model_mod.inference._fill_packed(model_mod.from_proto(with_if).graphs, short)
    fallback = model_mod.from_proto(with_if, infer_shapes=False)
    model_mod.inference.use_helper_result(fallback, ("packed", marshal.dumps(short)))
    _assert_same_types(raw, fallback)
    assert fallback.graphs[1].types.get("a").shape == (2,)


def test_reduced_schema_packs_as_the_parsed_model_does():
    # One graph: read through the reduced schema. value_info, then inputs, then outputs: a later
    # entry of the same name wins, as in value_types.
    plain = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] x) => (float[2] y) { y = Relu(x) }
    """)
    plain.graph.value_info.append(onnx.helper.make_tensor_value_info("x", onnx.TensorProto.DOUBLE, [7]))
    plain.graph.value_info.append(onnx.helper.make_tensor_value_info("z", onnx.TensorProto.INT64, ["n", None]))
    data = plain.SerializeToString()
    tables = _typeinfo.pack_serialized(data)
    assert tables == _typeinfo.pack(plain, data)
    assert tables == [{"x": ("tensor", onnx.TensorProto.FLOAT, (2,)), "y": ("tensor", onnx.TensorProto.FLOAT, (2,)),
                       "z": ("tensor", onnx.TensorProto.INT64, ("n", None))}]
    # A local function: the parsed model, whose tables cover the function too.
    with_function = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17, "local" : 1]>
    g (float[2] x) => (float[2] y) { y = local.Twice(x) }
    <domain: "local", opset_import: ["" : 17]>
    Twice (a) => (b) { b = Add(a, a) }
    """)
    data = with_function.SerializeToString()
    assert len(_typeinfo.pack_serialized(data)) == 2
    assert _typeinfo.pack_serialized(data) == _typeinfo.pack(with_function, data)



def _random_type(r: random.Random) -> onnx.TypeProto:
    """A TypeProto of the kinds and forms the helper meets, and some it hands back to the parser."""
    tp = onnx.TypeProto()
    kind = r.choice(["tensor", "tensor", "tensor", "sequence", "sparse", "none"])
    if kind == "sequence":
        tp.sequence_type.elem_type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    elif kind == "sparse":
        tp.sparse_tensor_type.elem_type = r.randint(0, 200)
    elif kind == "tensor":
        tt = tp.tensor_type
        if r.random() < 0.8:
            tt.elem_type = r.randint(0, 200)
        if r.random() < 0.8:
            tt.shape.SetInParent()
            for _ in range(r.randint(0, 12)):
                dim = tt.shape.dim.add()
                k = r.random()
                if k < 0.4:
                    dim.dim_value = r.choice([0, 1, 3, 127, 128, 300, 2**31, 2**62, 2**63 - 1, -1, -(2**63)])
                elif k < 0.8:
                    dim.dim_param = r.choice(["", "N", "batch", "unk__1234", "é", "x" * 130])
                if r.random() < 0.05:
                    dim.denotation = "DATA_BATCH"
        if r.random() < 0.05:
            tp.denotation = "TENSOR"
    return tp


def test_plain_tensor_type_decoder_agrees_with_the_protobuf_parse():
    r = random.Random(16)
    decoded = 0
    for _ in range(5000):
        tp = _random_type(r)
        data = tp.SerializeToString()
        fast = _typeinfo._plain_tensor_type(data)
        assert fast is None or fast == _typeinfo.type_tuple(onnx.TypeProto.FromString(data)), tp
        plain = (tp.WhichOneof("value") == "tensor_type" and len(data) < 128 and not tp.denotation
                 and all(not d.denotation and (d.WhichOneof("value") != "dim_value" or d.dim_value >= 0)
                         and len(d.dim_param.encode()) < 126 for d in tp.tensor_type.shape.dim))
        if plain and tp.tensor_type.elem_type < 128:
            assert fast is not None, tp  # the plain form is decoded here, not handed back
        decoded += fast is not None
    assert decoded > 500


def test_plain_tensor_type_decoder_on_damaged_bytes():
    # Plain tensor types with a byte changed, inserted or dropped: what it accepts, the parser reads alike.
    r = random.Random(17)
    accepted = 0
    for _ in range(20000):
        data = bytearray(_random_type(r).SerializeToString())
        k = r.randint(0, len(data))
        what = r.random()
        if what < 0.4 and k < len(data):
            data[k] = r.choice([0x00, 0x01, 0x08, 0x0A, 0x12, 0x1A, 0x7F, 0x80, 0xFF, r.randint(0, 255)])
        elif what < 0.7:
            data.insert(k, r.randint(0, 255))
        elif k < len(data):
            del data[k]
        fast = _typeinfo._plain_tensor_type(bytes(data))
        if fast is not None:
            accepted += 1
            assert fast == _typeinfo.type_tuple(onnx.TypeProto.FromString(bytes(data))), bytes(data)
    assert accepted > 100
