"""Bad input: exit code 2 and one clear line naming the file and the problem — never a traceback,
a hang, or a read outside the model's folder. Runs the installed `onnxdoctor` entry point."""

from __future__ import annotations

import os
import subprocess
import sys

import onnx
import pytest

import onnxdoctor
from onnxdoctor.errors import ModelLoadError
from onnxdoctor.model import load

from ._fixtures import MODELS, build


def _one_line_error(proc, path, phrase):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(path.name) in lines[0]
    assert phrase in lines[0], lines[0]


@pytest.mark.parametrize(
    "name,content,phrase",
    [
        ("empty.onnx", b"", "empty file"),
        ("random.onnx", bytes(range(256)) * 4, "not a valid ONNX protobuf"),
        ("text.onnx", b"hello, I am not a model\n", "not"),
        ("lfs.onnx", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
    ],
)
def test_garbage_files(tmp_path, run_cli, name, content, phrase):
    p = tmp_path / name
    p.write_bytes(content)
    _one_line_error(run_cli("check", p), p, phrase)


def test_truncated_model(tmp_path, run_cli):
    data = (MODELS / "example.onnx").read_bytes()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(data[: len(data) // 3])
    _one_line_error(run_cli("check", p), p, "not a valid ONNX protobuf")


def test_missing_file(tmp_path, run_cli):
    p = tmp_path / "nope.onnx"
    _one_line_error(run_cli("check", p), p, "no such file")


def test_deep_nesting_beyond_protobuf_limit(tmp_path, run_cli):
    p = tmp_path / "deep.onnx"
    p.write_bytes(build.deeply_nested_bytes(1000))
    _one_line_error(run_cli("check", p), p, "nesting is too deep")


@pytest.mark.parametrize(
    "factory,phrase",
    [
        (build.cyclic_model, "cycle through node 'add'"),
        (build.dangling_model, "reads 'ghost'"),
        (build.absurd_dims_model, "absurd size"),
    ],
)
def test_malformed_graphs(tmp_path, run_cli, factory, phrase):
    p = tmp_path / f"{factory.__name__}.onnx"
    onnx.save(factory(), p)
    _one_line_error(run_cli("check", p), p, phrase)


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../outside.bin"])
def test_external_data_outside_folder_is_refused(tmp_path, run_cli, location):
    d = tmp_path / "model"
    d.mkdir()
    secret = tmp_path / "outside.bin"
    secret.write_bytes(b"\0" * 16)
    p = d / "m.onnx"
    onnx.save(build.external_data_model(location), p)
    before = os.stat(secret).st_atime_ns
    _one_line_error(run_cli("check", p), p, "refused")
    assert os.stat(secret).st_atime_ns == before


def test_external_data_missing_is_a_finding(tmp_path, run_cli):
    p = tmp_path / "m.onnx"
    onnx.save(build.external_data_model("weights.bin"), p)
    proc = run_cli("check", p, "--format", "json", "--select", "MOD,TRT")
    assert proc.returncode == 1
    import json

    findings = json.loads(proc.stdout)["models"][0]["findings"]
    assert [(f["code"], f["tensor"]) for f in findings] == [("MOD502", "w")]
    assert "not found" in findings[0]["message"]


def test_external_data_present_and_short(tmp_path):
    p = tmp_path / "m.onnx"
    onnx.save(build.external_data_model("weights.bin", nbytes=16), p)
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    m = load(p)
    assert m.external_problems and "too short" in m.external_problems[0][1]
    (tmp_path / "weights.bin").write_bytes(b"\0" * 16)
    assert load(p).external_problems == []


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io to count bytes read")
def test_check_never_reads_external_weights(tmp_path):
    """check works from structure alone. onnx reads external data natively (no Python-level open),
    so count the bytes the process reads: a 1 GiB sparse weights file must not show up."""
    p = tmp_path / "m.onnx"
    onnx.save(build.external_data_model("weights.bin", nbytes=2**30), p)
    with open(tmp_path / "weights.bin", "wb") as fh:
        fh.truncate(2**30)  # sparse: costs no disk
    code = (
        "import sys, onnxdoctor\n"
        "r = onnxdoctor.check(sys.argv[1], trt='10.15')\n"
        "assert r.models[0].error is None and r.findings == [], r.findings\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/io') if l.startswith('rchar')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 2**28, f"check read {int(proc.stdout)} bytes: the weights were loaded"


def test_api_raises_for_single_bad_model(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="bad.onnx"):
        onnxdoctor.check(p)


def test_nesting_limit_finding_per_release(tmp_path):
    p = tmp_path / "deep30.onnx"
    p.write_bytes(build.deeply_nested_bytes(30))
    new = onnxdoctor.check(p, trt="10.15", select=["TRT141"]).findings
    old = onnxdoctor.check(p, trt="9.3", select=["TRT141"]).findings
    assert [f.code for f in new] == ["TRT141"] and "nested 30 levels" in new[0].message
    assert old == []


def test_subgraph_nodes_are_reported_with_their_path():
    m = onnx.parser.parse_model(
        """
        <ir_version: 8, opset_import: ["" : 13]>
        g (bool c, float[2,5] x) => (float[2,5] y) {
          y = If(c) <then_branch = t () => (float[2,5] a) { a = Hardmax<axis = 1>(x) },
                     else_branch = e () => (float[2,5] b) { b = Identity(x) }>
        }
        """
    )
    m.graph.node[0].name = "cond"
    f = onnxdoctor.check(m, trt="8.6", select=["TRT101"]).findings
    assert [(x.location.subgraph, x.location.op_type) for x in f] == [(("cond/then_branch",), "Hardmax")]


def test_ops_with_tensor_or_graph_attributes_match_the_onnx_schemas():
    """Load-time validation walks the attributes only of these standard ops (and of unknown or
    custom-domain ones): the set must cover every schema version onnx knows."""
    import onnx
    from onnx import AttributeProto as A

    from onnxdoctor.model import TENSOR_OR_GRAPH_ATTR_OPS
    from onnxdoctor.model.validate import _may_hold_tensors

    kinds = {A.TENSOR, A.SPARSE_TENSOR, A.TENSORS, A.SPARSE_TENSORS, A.GRAPH, A.GRAPHS}
    holders = {s.name for s in onnx.defs.get_all_schemas_with_history()
               if s.domain in ("", "ai.onnx") and any(a.type in kinds for a in s.attributes.values())}
    assert holders == set(TENSOR_OR_GRAPH_ATTR_OPS)
    from onnxdoctor._onnx_ops import PLAIN_STANDARD_OPS

    standard = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain in ("", "ai.onnx")}
    assert not PLAIN_STANDARD_OPS & holders
    # every name is an ONNX op (an older onnx may lack the newest few: those are then simply walked)
    assert len(PLAIN_STANDARD_OPS - standard) <= 15 and len(PLAIN_STANDARD_OPS & standard) > 150
    assert _may_hold_tensors("NotAnOnnxOp", "") and _may_hold_tensors("Add", "com.example")
    assert not _may_hold_tensors("Add", "") and _may_hold_tensors("Constant", "ai.onnx")


def _external(entries):
    t = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4])
    t.data_location = onnx.TensorProto.EXTERNAL
    for key, value in entries:
        t.external_data.add(key=key, value=value)
    return t


def test_external_reference_reading():
    """The first entry of a key counts, blanks around a number are allowed, the default offset is 0;
    a missing location, a negative or non-numeric number is refused, naming the tensor."""
    from onnxdoctor.external import RefError, parse_ref

    ref = parse_ref(_external([("location", "a.bin"), ("offset", " 16 "), ("location", "b.bin"),
                               ("length", "8"), ("offset", "99"), ("checksum", "x")]))
    assert tuple(ref) == ("w", "a.bin", 16, 8)
    assert tuple(parse_ref(_external([("location", "a.bin")]))) == ("w", "a.bin", 0, None)
    for entries, phrase in (([("offset", "0")], "names no location"),
                            ([("location", ""), ("location", "a.bin")], "names no location"),
                            ([("location", "a.bin"), ("offset", "-4")], "offset '-4' is negative"),
                            ([("location", "a.bin"), ("length", "4x")], "length '4x' is not a number"),
                            ([("location", "a.bin"), ("length", "١٢")], "is not a number")):
        with pytest.raises(RefError, match=phrase) as e:
            parse_ref(_external(entries))
        assert "'w'" in str(e.value)
