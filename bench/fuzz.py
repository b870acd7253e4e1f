#!/usr/bin/env python3
"""A seeded, time-bounded fuzz harness for onnxdoctor's contract on hostile input (issue 13).

Each case is a folder holding a model (and sometimes external-data files, symlinks, a FIFO): a
fixture mutated at the byte level, a model from the catalog of structurally hostile models, or a
random composition of structural mutations of a fixture (plus, sometimes, byte corruption on top).
One onnxdoctor command runs on it in a subprocess (check in every format, fix, fix --precision fp16,
verify --fp16 / --against / --layerwise, profile), with HOME, TMPDIR and the working directory set
to empty private folders, and the run is judged:

- no traceback, exit code 0, 1 or 2; exit 2 comes with exactly one line on stderr, which starts
  with `onnxdoctor: ` and names the model or output file; no other line on stderr;
- no hang: the run ends within --timeout seconds (killed otherwise);
- no memory beyond --max-rss-mb (peak RSS of the run, from wait4's rusage);
- no input modified: every file of the case folder has its sha256 of before;
- no write outside the output path: nothing new in the case folder but the outputs the command
  names, nothing in HOME, TMPDIR or the working directory;
- no terminal escape sequence from the model in the output (ESC on stdout or stderr);
- a fix that exits 0/1 leaves a model that loads with its external data; exit 2 leaves none.

Everything is derived from --seed: case i of seed S is the same case on every machine, so
`--replay I` reruns one, and failures are saved (case folder + command + verdict) under
bench/out/fuzz/failures/. tests/test_fuzz.py runs a short campaign in the test suite; a long one
runs by hand:

    python bench/fuzz.py --minutes 30 --seed 1 --json bench/out/fuzz/summary.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "models"
OUT = REPO / "bench" / "out" / "fuzz"


# ================================================================================================
# Seeds: fixture models
# ================================================================================================
def fixture_paths() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*.onnx") if p.is_file())


_SEED_CACHE: dict[Path, bytes] = {}


def fixture_bytes(path: Path) -> bytes:
    if path not in _SEED_CACHE:
        _SEED_CACHE[path] = path.read_bytes()
    return _SEED_CACHE[path]


def small_model(opset: int = 17) -> onnx.ModelProto:
    m = onnx.parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : {opset}]>
    g (float[2,8] x) => (float[2,8] y) {{
      a = Add(x, w)
      b = Relu(a)
      c = Mul(b, w)
      y = Sigmoid(c)
    }}""")
    m.graph.initializer.append(numpy_helper.from_array(np.linspace(-1, 1, 8, dtype=np.float32), "w"))
    for i, n in enumerate(m.graph.node):
        n.name = f"n{i}"
    return m


# ================================================================================================
# The catalog of structurally hostile models
# ================================================================================================
# Each entry writes a case into `folder` and returns the model's file name.
def _save(folder: Path, m: onnx.ModelProto, name: str = "model.onnx") -> str:
    (folder / name).write_bytes(m.SerializeToString())
    return name


def _external(t: TensorProto, **fields) -> None:
    t.ClearField("raw_data")
    for f in ("float_data", "int32_data", "int64_data", "double_data"):
        t.ClearField(f)
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in fields.items():
        e = t.external_data.add()
        e.key, e.value = k, v


def _ext_model(folder: Path, *, where: str = "initializer", location: str = "w.bin", offset: str | None = "0",
               length: str | None = "32", data: bytes | None = b"\0" * 32) -> str:
    m = small_model()
    t = m.graph.initializer[0]
    fields = {"location": location}
    if offset is not None:
        fields["offset"] = offset
    if length is not None:
        fields["length"] = length
    if where == "initializer":
        _external(t, **fields)
    elif where == "constant":
        del m.graph.initializer[:]
        c = numpy_helper.from_array(np.ones(8, np.float32), "wc")
        _external(c, **fields)
        m.graph.node.insert(0, helper.make_node("Constant", [], ["w"], value=c, name="const"))
    elif where == "sparse":
        del m.graph.initializer[:]
        vals = numpy_helper.from_array(np.ones(8, np.float32), "w")
        _external(vals, **fields)
        idx = numpy_helper.from_array(np.arange(8, dtype=np.int64), "w_idx")
        m.graph.sparse_initializer.append(helper.make_sparse_tensor(vals, idx, [8]))
    elif where == "if-branch":
        del m.graph.initializer[:]
        c = numpy_helper.from_array(np.ones(8, np.float32), "wb")
        _external(c, **fields)
        then_g = helper.make_graph([helper.make_node("Constant", [], ["wt"], value=c)], "then", [],
                                   [helper.make_tensor_value_info("wt", TensorProto.FLOAT, [8])])
        else_g = helper.make_graph([helper.make_node("Constant", [], ["we"], value=numpy_helper.from_array(np.ones(8, np.float32)))],
                                   "else", [], [helper.make_tensor_value_info("we", TensorProto.FLOAT, [8])])
        m.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
        m.graph.node.insert(0, helper.make_node("If", ["cond"], ["w"], then_branch=then_g, else_branch=else_g, name="if"))
    elif where == "function":
        del m.graph.initializer[:]
        c = numpy_helper.from_array(np.ones(8, np.float32), "wf")
        _external(c, **fields)
        f = helper.make_function("local", "MakeW", [], ["o"], [helper.make_node("Constant", [], ["o"], value=c)],
                                 [helper.make_opsetid("", 17)])
        m.functions.append(f)
        m.opset_import.append(helper.make_opsetid("local", 1))
        m.graph.node.insert(0, helper.make_node("MakeW", [], ["w"], domain="local", name="makew"))
    if data is not None and location and "\0" not in location and len(location) < 200 and not location.startswith(("/", "..")):
        try:
            (folder / location).write_bytes(data)
        except OSError:
            pass
    return _save(folder, m)


def _write(folder: Path, data: bytes, name: str = "model.onnx") -> str:
    (folder / name).write_bytes(data)
    return name


def _fixture_build():
    import importlib.util

    spec = importlib.util.spec_from_file_location("onnxdoctor_fixtures_build", REPO / "fixtures" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _chain(n: int, op: str = "Relu") -> onnx.ModelProto:
    nodes = [helper.make_node(op, [f"t{i}"], [f"t{i + 1}"], name=f"n{i}") for i in range(n)]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _many_outputs(n: int) -> onnx.ModelProto:
    nodes, outs = [], []
    for i in range(n):
        nodes.append(helper.make_node("Relu" if i % 2 else "Neg", ["x"], [f"o{i}"], name=f"n{i}"))
        outs.append(helper.make_tensor_value_info(f"o{i}", TensorProto.FLOAT, [1, 4]))
    g = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], outs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _nested_if(depth: int) -> onnx.ModelProto:
    inner = helper.make_graph([helper.make_node("Relu", ["x"], ["r0"])], "b0", [],
                              [helper.make_tensor_value_info("r0", TensorProto.FLOAT, [2])])
    for d in range(1, depth + 1):
        leaf = helper.make_graph([helper.make_node("Neg", ["x"], [f"e{d}"])], f"e{d}", [],
                                 [helper.make_tensor_value_info(f"e{d}", TensorProto.FLOAT, [2])])
        # one nested branch per level (two would double the size at every level)
        node = helper.make_node("If", ["cond"], [f"r{d}"], then_branch=inner, else_branch=leaf, name=f"if{d}")
        inner = helper.make_graph([node], f"b{d}", [], [helper.make_tensor_value_info(f"r{d}", TensorProto.FLOAT, [2])])
    g = helper.make_graph(list(inner.node), "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                                                  helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                          [helper.make_tensor_value_info(f"r{depth}", TensorProto.FLOAT, [2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _io_model(elem: int = 1, dims=(2, 8), opset: int = 17) -> onnx.ModelProto:
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "g",
                          [helper.make_tensor_value_info("x", elem, list(dims))],
                          [helper.make_tensor_value_info("y", elem, list(dims))])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _utf8_garbage(folder: Path) -> str:
    m = small_model()
    m.graph.node[0].name = "NAMEA"
    m.graph.node[1].output[0] = "TENSB"
    m.graph.node[2].input[0] = "TENSB"
    m.graph.node[2].op_type = "Mul"
    m.metadata_props.append(onnx.StringStringEntryProto(key="META", value="VALUEZ"))
    m.graph.input[0].type.tensor_type.shape.dim[1].ClearField("dim_value")
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "DIMP"
    m.graph.output[0].type.tensor_type.shape.dim[1].ClearField("dim_value")
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "DIMP"
    data = m.SerializeToString()
    for old, new in ((b"NAMEA", b"N\xff\xfe\x80A"), (b"TENSB", b"T\xc3\x28\xa0B"), (b"VALUEZ", b"V\xed\xa0\x80ZZ"),
                     (b"DIMP", b"D\xf8\x88P"), (b"META", b"\xffETA")):
        data = data.replace(old, new)
    (folder / "model.onnx").write_bytes(data)
    return "model.onnx"


def _escapes(folder: Path) -> str:
    m = small_model()
    evil = "\x1b[2J\x1b]0;owned\x07\x1b[31m"
    m.graph.node[0].name = f"n{evil}0"
    m.graph.node[0].op_type = f"Evil{evil}Op"  # an unknown op: its name ends up in findings
    m.graph.node[1].name = "\r\x1b[1A\x08\x7f"
    m.graph.input[0].name = f"x{evil}"
    m.graph.node[0].input[0] = f"x{evil}"
    return _save(folder, m)


def _qdq_axis_list(folder: Path) -> str:
    m = onnx.parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2,3] x) => (float[2,3] y) {
      q = QuantizeLinear<axis = [1, 2]>(x, s, z)
      y = DequantizeLinear<axis = [1]>(q, s, z)
    }""")
    m.graph.initializer.extend([numpy_helper.from_array(np.full(3, 0.1, np.float32), "s"),
                                numpy_helper.from_array(np.zeros(3, np.int8), "z")])
    return _save(folder, m)


def _symlink_loop(folder: Path) -> str:
    os.symlink("loop_b", folder / "loop_a")
    os.symlink("loop_a", folder / "loop_b")
    return _ext_model(folder, location="loop_a", data=None)


def _symlink_out(folder: Path) -> str:
    os.symlink("/etc/hostname", folder / "w.bin")
    return _ext_model(folder, location="w.bin", data=None)


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "w.bin")
    return _ext_model(folder, location="w.bin", data=None)


def _directory_data(folder: Path) -> str:
    (folder / "w.bin").mkdir()
    return _ext_model(folder, location="w.bin", data=None)


def _dup_producer(folder: Path) -> str:
    m = small_model()
    m.graph.node[2].output[0] = "a"  # Mul writes what Add writes
    m.graph.node[3].input[0] = "a"
    return _save(folder, m)


def _writes_input(folder: Path) -> str:
    m = small_model()
    m.graph.node[1].output[0] = "x"
    m.graph.node[2].input[0] = "x"
    return _save(folder, m)


def _big_input(folder: Path) -> str:
    return _save(folder, _io_model(dims=(30000, 10000)))


CATALOG = {
    "ext-missing": lambda d: _ext_model(d, data=None),
    "ext-short": lambda d: _ext_model(d, data=b"\0" * 8),
    "ext-no-length": lambda d: _ext_model(d, length=None),
    "ext-no-length-short": lambda d: _ext_model(d, length=None, data=b"\0" * 4),
    "ext-negative-offset": lambda d: _ext_model(d, offset="-4"),
    "ext-past-end-offset": lambda d: _ext_model(d, offset="4096", length=None),
    "ext-huge-length": lambda d: _ext_model(d, length=str(2**63)),
    "ext-nonnumeric": lambda d: _ext_model(d, offset="0x10"),
    "ext-no-location": lambda d: _ext_model(d, location="", data=None),
    "ext-nul": lambda d: _ext_model(d, location="w\0.bin", data=None),
    "ext-long-name": lambda d: _ext_model(d, location="w" * 5000, data=None),
    "ext-long-component": lambda d: _ext_model(d, location="d/" + "w" * 300, data=None),
    "ext-absolute": lambda d: _ext_model(d, location="/etc/passwd", data=None),
    "ext-dotdot": lambda d: _ext_model(d, location="../../../etc/passwd", data=None),
    "ext-symlink-loop": _symlink_loop,
    "ext-symlink-out": _symlink_out,
    "ext-fifo": _fifo,
    "ext-directory": _directory_data,
    "ext-in-constant": lambda d: _ext_model(d, where="constant", location="c.bin", data=None),
    "ext-in-constant-ok": lambda d: _ext_model(d, where="constant", location="c.bin", data=b"\0" * 32),
    "ext-in-sparse": lambda d: _ext_model(d, where="sparse", location="s.bin", data=None),
    "ext-in-if": lambda d: _ext_model(d, where="if-branch", location="i.bin", data=None),
    "ext-in-if-ok": lambda d: _ext_model(d, where="if-branch", location="i.bin", data=b"\0" * 32),
    "ext-in-function": lambda d: _ext_model(d, where="function", location="f.bin", data=None),
    "ext-in-function-dotdot": lambda d: _ext_model(d, where="function", location="../f.bin", data=None),
    "utf8-garbage": _utf8_garbage,
    "escapes": _escapes,
    "qdq-axis-list": _qdq_axis_list,
    "dup-producer": _dup_producer,
    "writes-input": _writes_input,
    "opset-99": lambda d: _save(d, small_model(99)),
    "opset-0": lambda d: _save(d, small_model(0)),
    "elem-0": lambda d: _save(d, _io_model(elem=0)),
    "elem-999": lambda d: _save(d, _io_model(elem=999)),
    "elem-string": lambda d: _save(d, _io_model(elem=TensorProto.STRING)),
    "dims-2^40": lambda d: _save(d, _io_model(dims=(2**40,))),
    "dims-2^62": lambda d: _save(d, _io_model(dims=(2**62, 2**62))),
    "rank-66": lambda d: _save(d, _io_model(dims=(1,) * 66)),
    "big-static-input": _big_input,
    "nested-if-20": lambda d: _save(d, _nested_if(20)),
    "nested-bytes-70": lambda d: _write(d, _fixture_build().deeply_nested_bytes(70)),
    "nested-bytes-1000": lambda d: _write(d, _fixture_build().deeply_nested_bytes(1000)),
    "chain-20k": lambda d: _save(d, _chain(20000)),
    "chain-100k": lambda d: _save(d, _chain(100000)),  # issue 13's 2.5 MB chain
    "wide-5000": lambda d: _save(d, _many_outputs(5000)),
    "empty-graph": lambda d: _save(d, helper.make_model(helper.make_graph([], "e", [], []), opset_imports=[helper.make_opsetid("", 17)])),
}


# ================================================================================================
# Mutations
# ================================================================================================
def byte_mutation(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "zero", "splice", "varint"])
    if not b:
        return bytes(rng.randbytes(rng.randint(1, 64)))
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del b[rng.randrange(len(b)):]
    elif kind == "insert":
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.randbytes(rng.randint(1, 32))
    elif kind == "zero":
        i = rng.randrange(len(b))
        b[i:i + rng.randint(1, 256)] = bytes(min(256, len(b) - i))
    elif kind == "splice":
        i, j = sorted(rng.randrange(len(b)) for _ in range(2))
        k = rng.randrange(len(b))
        b[k:k] = b[i:j][:4096]
    else:  # a length prefix made huge
        i = rng.randrange(len(b))
        b[i:i + 1] = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    return bytes(b)


ESCAPE = "\x1b[31m\x1b]0;x\x07"
OPS = ["Relu", "Add", "If", "Loop", "Scan", "Constant", "Reshape", "NonMaxSuppression", "Einsum", "Hardmax", "TopK",
       "QuantizeLinear", "DequantizeLinear", "Resize", "NotAnOp", "Cast", "Gather", "Concat", "Slice", "Softmax"]


def _rand_value_for_attr(rng: random.Random):
    kind = rng.choice(["int", "ints", "float", "string", "tensor", "graph", "huge"])
    if kind == "int":
        return rng.choice([0, -1, 1, 2**31, -2**63, 7])
    if kind == "ints":
        return [rng.randint(-3, 3) for _ in range(rng.randint(0, 4))]
    if kind == "float":
        return rng.choice([0.0, -1.0, 1e30, float("inf"), float("nan")])
    if kind == "string":
        return rng.choice(["", "x", ESCAPE, "a" * 1000])
    if kind == "tensor":
        return numpy_helper.from_array(np.array([rng.random()], np.float32))
    if kind == "graph":
        return helper.make_graph([], "empty", [], [])
    return [2**62] * 3


def _attribute(name: str, value) -> onnx.AttributeProto:
    """helper.make_attribute, with an empty list taken as INTS (it cannot infer a type from nothing)."""
    if isinstance(value, list) and not value:
        return helper.make_attribute(name, value, attr_type=onnx.AttributeProto.INTS)
    return helper.make_attribute(name, value)


def structural_mutation(m: onnx.ModelProto, rng: random.Random, folder: Path) -> str:
    g = m.graph
    nodes = list(g.node)
    kind = rng.choice([
        "dup-output", "output-is-input", "opset", "attr-type", "attr-add", "op-type", "domain", "dims", "elem",
        "name-escape", "name-long", "external", "drop-init", "cycle", "nested", "many-outputs", "empty",
        "value-info", "metadata", "ir-version", "rename", "drop-output", "opset-domain", "huge-init",
        "writes-own-input",
    ])
    if kind == "dup-output" and len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        if a.output and b.output:
            b.output[0] = a.output[0]
    elif kind == "writes-own-input" and nodes:
        # a node writing the name it reads (SSA broken): the def-use graph loops back on itself
        # (SHP204, GRF415 and GRF416 walked such loops forever before session 10)
        n = rng.choice(nodes)
        if n.input and n.input[0] and n.output:
            n.output[0] = n.input[0]
    elif kind == "output-is-input" and nodes and g.input:
        n = rng.choice(nodes)
        if n.output:
            n.output[0] = g.input[0].name
    elif kind == "opset":
        for o in m.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = rng.choice([0, 1, 6, 99, 2**31 - 1, 2**62, 7, 13, 21])
    elif kind == "opset-domain":
        m.opset_import.append(helper.make_opsetid(rng.choice(["ai.onnx.ml", "com.microsoft", "x" * 300, ""]),
                                                  rng.choice([1, 99, 0])))
    elif kind == "attr-type" and nodes:
        n = rng.choice(nodes)
        if n.attribute:
            a = rng.choice(list(n.attribute))
            name = a.name
            n.attribute.remove(a)
            n.attribute.append(_attribute(name, _rand_value_for_attr(rng)))
    elif kind == "attr-add" and nodes:
        n = rng.choice(nodes)
        n.attribute.append(_attribute(rng.choice(["axis", "axes", "perm", "to", "value", "mode", "body"]),
                                      _rand_value_for_attr(rng)))
    elif kind == "op-type" and nodes:
        rng.choice(nodes).op_type = rng.choice(OPS)
    elif kind == "domain" and nodes:
        rng.choice(nodes).domain = rng.choice(["com.microsoft", "ai.onnx.ml", "trt", ESCAPE, "ai.onnx"])
    elif kind == "dims" and g.input:
        vi = rng.choice(list(g.input))
        if vi.type.HasField("tensor_type"):
            shape = vi.type.tensor_type.shape
            if rng.random() < 0.3:
                shape.ClearField("dim")
                for _ in range(rng.choice([0, 9, 66])):
                    shape.dim.add().dim_value = 1
            elif shape.dim:
                d = rng.choice(list(shape.dim))
                choice = rng.choice([0, -1, 2**40, 2**62, 100000, "sym"])
                if choice == "sym":
                    d.dim_param = rng.choice(["N", ESCAPE, "a b"])
                else:
                    d.dim_value = choice
    elif kind == "elem" and g.input:
        vi = rng.choice(list(g.input))
        vi.type.tensor_type.elem_type = rng.choice([0, 999, TensorProto.STRING, TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN,
                                                    TensorProto.COMPLEX64, TensorProto.INT4])
    elif kind == "name-escape" and nodes:
        rng.choice(nodes).name = "evil" + ESCAPE
    elif kind == "name-long" and nodes:
        rng.choice(nodes).name = "n" * rng.choice([1000, 100000])
    elif kind == "external" and g.initializer:
        t = rng.choice(list(g.initializer))
        loc = rng.choice(["w.bin", "", "w\0", "../w.bin", "/etc/passwd", "a" * 5000, "sub/../w.bin", "loop"])
        fields = {"location": loc}
        if rng.random() < 0.7:
            fields["offset"] = rng.choice(["0", "-1", "99999999", "x", "4096"])
        if rng.random() < 0.6:
            fields["length"] = rng.choice(["0", "4", "-4", str(2**64), "16"])
        _external(t, **fields)
        if loc == "w.bin" and rng.random() < 0.6:
            (folder / "w.bin").write_bytes(rng.randbytes(rng.choice([0, 8, 64, 5000])))
        if loc == "loop" and not os.path.lexists(folder / "loop"):
            os.symlink("loop", folder / "loop")
    elif kind == "drop-init" and g.initializer:
        g.initializer.remove(rng.choice(list(g.initializer)))
    elif kind == "cycle" and len(nodes) >= 2:
        a, b = nodes[0], nodes[-1]
        if a.input and b.output:
            a.input[0] = b.output[0]
    elif kind == "nested":
        body = helper.make_graph(list(g.node), "body", [], list(g.output))
        del g.node[:]
        cond = "fuzz_cond"
        g.initializer.append(numpy_helper.from_array(np.array(True), cond))
        g.node.append(helper.make_node("If", [cond], [o.name for o in g.output], then_branch=body, else_branch=body,
                                       name="wrap"))
    elif kind == "many-outputs":
        have = {o.name for o in g.output}
        for n in nodes[:3000]:
            for o in n.output:
                if o and o not in have:
                    g.output.append(onnx.ValueInfoProto(name=o))
                    have.add(o)
    elif kind == "empty":
        del g.node[:]
    elif kind == "value-info":
        names = [o for n in nodes for o in n.output if o]
        if names:
            g.value_info.append(helper.make_tensor_value_info(rng.choice(names), rng.choice([1, 7, 0, 999]),
                                                              [rng.choice([1, -5, 2**40])]))
    elif kind == "metadata":
        m.metadata_props.append(onnx.StringStringEntryProto(key="onnxdoctor:ignore",
                                                            value=rng.choice(["*:ALL", ESCAPE, "TRT101", "[:", "**:X" * 100])))
    elif kind == "ir-version":
        m.ir_version = rng.choice([0, 1, 3, 99, 2**62])
    elif kind == "rename" and nodes:
        n = rng.choice(nodes)
        if n.input:
            n.input[rng.randrange(len(n.input))] = rng.choice(["", "ghost", ESCAPE])
    elif kind == "drop-output" and g.output:
        g.output.remove(rng.choice(list(g.output)))
    elif kind == "huge-init" and g.initializer:
        t = rng.choice(list(g.initializer))
        del t.dims[:]
        t.dims.extend(rng.choice([[2**20, 2**20, 2**20], [-1], [0], [2**31, 2]]))
    return kind


# ================================================================================================
# Cases
# ================================================================================================
@dataclass
class Case:
    index: int
    origin: str  # "bytes:<fixture>" | "catalog:<name>" | "mutate:<fixture>:<kinds>"
    folder: Path
    model: str  # file name inside folder
    args: list[str] = field(default_factory=list)  # the command, with {model} / {out} filled in
    outputs: list[str] = field(default_factory=list)  # relative paths the command may write


def make_case(seed: int, index: int, root: Path) -> Case:
    rng = random.Random(f"{seed}:{index}")
    folder = root / f"case{index}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "out").mkdir()
    fixtures = fixture_paths()
    r = rng.random()
    if r < 0.3:
        src = rng.choice(fixtures)
        data = fixture_bytes(src)
        for _ in range(rng.randint(1, 3)):
            data = byte_mutation(data, rng)
        (folder / "model.onnx").write_bytes(data)
        origin = f"bytes:{src.name}"
    elif r < 0.6:
        name = rng.choice(sorted(CATALOG))
        CATALOG[name](folder)
        origin = f"catalog:{name}"
    else:
        src = rng.choice(fixtures + [None] * 4)
        m = small_model() if src is None else onnx.load_from_string(fixture_bytes(src))
        kinds = [structural_mutation(m, rng, folder) for _ in range(rng.randint(1, 4))]
        try:
            data = m.SerializeToString()
        except Exception:  # noqa: BLE001 - protobuf refused (e.g. too deep): a byte-level case instead
            data = fixture_bytes(fixtures[0])
        if rng.random() < 0.15:
            data = byte_mutation(data, rng)
        (folder / "model.onnx").write_bytes(data)
        origin = f"mutate:{src.name if src else 'small'}:{'+'.join(kinds)}"
    args, outputs = _command(rng)
    return Case(index, origin, folder, "model.onnx", args, outputs)


# Every fix and verify gets a --time-limit, a deadline for the whole command: 20 s, or a third of the
# harness's --timeout when that is shorter (run_case fills it in). A run over it must stop with exit 2
# and its one line well before the harness's --timeout counts it as a hang.
TIME_LIMIT = ["--time-limit", "{time_limit}"]


def time_limit(timeout: float) -> str:
    return f"{min(20.0, timeout / 3):g}"


def _command(rng: random.Random) -> tuple[list[str], list[str]]:
    kind = rng.choices(["check", "check-o", "fix", "fix-fp16", "verify-fp16", "verify-against", "verify-layerwise", "profile"],
                       weights=[25, 10, 20, 8, 12, 6, 8, 6])[0]
    if kind == "check":
        return ["check", "{model}", "--format", rng.choice(["text", "json", "sarif", "github"])] + \
               (["--trt", rng.choice(["8.6", "10.15", "11.5"])] if rng.random() < 0.3 else []), []
    if kind == "check-o":
        return ["check", "{model}", "--format", rng.choice(["text", "json", "sarif"]), "-o", "out/report.txt"], ["out/report.txt"]
    if kind == "fix":
        extra = rng.choice([[], ["--no-prove"], ["--rules", "strict"], ["--unsafe-fixes"], ["--report", "out/fix.json"]])
        outs = ["out/fixed.onnx", "out/fixed.onnx.data", "out/fixed.onnx.1.data"] + (["out/fix.json"] if "--report" in extra else [])
        return ["fix", "{model}", "-o", "out/fixed.onnx", "--isolated", *TIME_LIMIT] + extra, outs
    if kind == "fix-fp16":
        return ["fix", "{model}", "-o", "out/fixed.onnx", "--precision", "fp16", "--unsafe-fixes", "--isolated",
                *TIME_LIMIT], \
               ["out/fixed.onnx", "out/fixed.onnx.data", "out/fixed.onnx.1.data"]
    if kind == "verify-fp16":
        return ["verify", "{model}", "--fp16", *TIME_LIMIT] + \
               (["--format", "json"] if rng.random() < 0.5 else []), []
    if kind == "verify-against":
        return ["verify", "{model}", "--against", "{model}", "-o", "out/verify.txt", *TIME_LIMIT], ["out/verify.txt"]
    if kind == "verify-layerwise":
        return ["verify", "{model}", "--against", "{model}", "--layerwise", *TIME_LIMIT], []
    return ["profile", "{model}", "--isolated"] + (["--no-validate"] if rng.random() < 0.5 else []), []


# ================================================================================================
# Running and judging
# ================================================================================================
@dataclass
class Verdict:
    index: int
    origin: str
    command: list[str]
    returncode: int | None
    seconds: float
    max_rss_mb: float
    violations: list[str]
    stderr_tail: str = ""


def _snapshot(folder: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            try:
                if p.is_symlink():
                    out[rel] = "symlink:" + os.readlink(p)
                elif p.is_fifo():
                    out[rel] = "fifo"
                elif p.is_file():
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError as e:
                out[rel] = f"unreadable:{e.errno}"
    return out


def _limits(max_as_mb: int):
    def apply():
        os.setsid()
        if max_as_mb:
            resource.setrlimit(resource.RLIMIT_AS, (max_as_mb << 20, max_as_mb << 20))
        try:
            os.nice(5)
        except OSError:
            pass
    return apply


def run_case(case: Case, exe: list[str], *, timeout: float, max_rss_mb: float, max_as_mb: int, scratch: Path) -> Verdict:
    model = str(case.folder / case.model)
    args = [a.replace("{model}", model).replace("{time_limit}", time_limit(timeout)) for a in case.args]
    args = [str(case.folder / a) if a.startswith("out/") else a for a in args]
    before = _snapshot(case.folder)
    home, tmp, cwd = scratch / "home", scratch / "tmp", scratch / "cwd"
    for d in (home, tmp, cwd):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY",)}
    env.update(HOME=str(home), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp), PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.monotonic()
    proc = subprocess.Popen(exe + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            preexec_fn=_limits(max_as_mb))
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    seconds = time.monotonic() - t0
    # the child's peak RSS: rusage of the reaped child (Popen reaped it; RUSAGE_CHILDREN is cumulative max)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    v: list[str] = []
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    rc = proc.returncode
    if timed_out:
        v.append(f"hang: killed after {timeout:.0f} s")
    if "Traceback (most recent call last)" in stderr or "Traceback (most recent call last)" in stdout:
        v.append("traceback: " + _last_line(stderr))
    if not timed_out and rc not in (0, 1, 2):
        v.append(f"exit code {rc}" + (" (killed by a signal: memory?)" if rc is not None and rc < 0 else ""))
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if rc == 2:
        if len(lines) != 1:
            v.append(f"exit 2 with {len(lines)} lines on stderr")
        elif not lines[0].startswith("onnxdoctor: "):
            v.append(f"exit 2 line does not start with 'onnxdoctor: ': {lines[0][:200]!r}")
        elif case.model not in lines[0] and not any(Path(o).name in lines[0] for o in case.outputs):
            v.append(f"exit 2 line names no file: {lines[0][:200]!r}")
    elif rc in (0, 1):
        noise = [ln for ln in lines if not ln.startswith("onnxdoctor: ")]
        if noise:
            v.append(f"stderr noise: {noise[0][:200]!r}")
    if "\x1b" in stdout or "\x1b" in stderr:
        v.append("terminal escape sequence in the output")
    after = _snapshot(case.folder)
    for rel, digest in before.items():
        if after.get(rel) != digest:
            v.append(f"input modified or removed: {rel}")
    allowed = set(case.outputs)
    for rel in after:
        if rel not in before and rel not in allowed:
            v.append(f"write outside the output path: {rel}")
    for d in (home, tmp, cwd):
        leftovers = [str(p.relative_to(d)) for p in d.rglob("*")]
        if leftovers:
            v.append(f"write outside the output path: {d.name}/{leftovers[0]}")
    if case.args[0] == "fix" and "out/fixed.onnx" in case.outputs:
        fixed = case.folder / "out" / "fixed.onnx"
        if rc in (0, 1) and not fixed.exists():
            v.append("fix exited 0/1 but wrote no model")
        if rc in (0, 1) and fixed.exists():
            try:
                onnx.load(str(fixed))
            except Exception as e:  # noqa: BLE001
                v.append(f"fix wrote a model that does not load: {type(e).__name__}: {str(e)[:120]}")
        if rc == 2 and fixed.exists():
            v.append("fix exited 2 but wrote a model")
    if rss_mb > max_rss_mb:
        v.append(f"memory: peak RSS {rss_mb:.0f} MB over the budget {max_rss_mb:.0f} MB")
    return Verdict(case.index, case.origin, args, rc, round(seconds, 2), round(rss_mb, 1), v,
                   stderr[-600:] if v else "")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def _peak_rss_runner() -> list[str]:
    return []


def campaign(seed: int, seconds: float, exe: list[str], *, timeout: float = 60, max_rss_mb: float = 3000,
             max_as_mb: int = 0, root: Path | None = None, start: int = 0, max_cases: int | None = None,
             log=print, save_failures: bool = True) -> dict:
    """Run cases seed:start, seed:start+1, ... until `seconds` have passed (or `max_cases`)."""
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="onnxdoctor-fuzz-")) if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    verdicts: list[Verdict] = []
    origins: dict[str, int] = {}
    commands: dict[str, int] = {}
    exits: dict[str, int] = {}
    index = start
    try:
        while time.monotonic() - t0 < seconds and (max_cases is None or index - start < max_cases):
            try:
                case = make_case(seed, index, root / "cases")
            except Exception as e:  # noqa: BLE001 - a generator bug is the harness's, not onnxdoctor's
                log(f"case {index}: could not build the case ({type(e).__name__}: {e}); skipped")
                index += 1
                continue
            verdict = _run_measured(case, exe, timeout=timeout, max_rss_mb=max_rss_mb, max_as_mb=max_as_mb,
                                    scratch=root / "scratch")
            verdicts.append(verdict)
            origins[case.origin.split(":")[0]] = origins.get(case.origin.split(":")[0], 0) + 1
            cmd = case.args[0] + ("-fp16" if "fp16" in " ".join(case.args) else "") + \
                ("-layerwise" if "--layerwise" in case.args else "")
            commands[cmd] = commands.get(cmd, 0) + 1
            exits[str(verdict.returncode)] = exits.get(str(verdict.returncode), 0) + 1
            if verdict.violations:
                log(f"case {index} ({case.origin}) {' '.join(case.args)}: {'; '.join(verdict.violations)}")
                if save_failures:
                    dest = OUT / "failures" / f"seed{seed}-case{index}"
                    shutil.rmtree(dest, ignore_errors=True)
                    shutil.copytree(case.folder, dest, symlinks=True, ignore_dangling_symlinks=True)
                    (dest / "verdict.json").write_text(json.dumps(asdict(verdict), indent=1, default=str))
            shutil.rmtree(case.folder, ignore_errors=True)
            index += 1
    finally:
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    failed = [v for v in verdicts if v.violations]
    return {
        "seed": seed, "first_case": start, "cases": len(verdicts), "seconds": round(time.monotonic() - t0, 1),
        "timeout_s": timeout, "max_rss_mb_budget": max_rss_mb,
        "origins": origins, "commands": commands, "exit_codes": exits,
        "slowest_s": max((v.seconds for v in verdicts), default=0.0),
        "peak_rss_mb": max((v.max_rss_mb for v in verdicts), default=0.0),
        "violations": len(failed),
        "failures": [asdict(v) for v in failed],
    }


def _run_measured(case: Case, exe, **kw) -> Verdict:
    """run_case in a fresh child of this process, so that RUSAGE_CHILDREN is the one run's peak."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            verdict = run_case(case, exe, **kw)
            data = json.dumps(asdict(verdict), default=str).encode()
        except BaseException as e:  # noqa: BLE001
            data = json.dumps({"harness_error": repr(e)}).encode()
        with os.fdopen(w, "wb") as fh:
            fh.write(data)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    d = json.loads(data or b"{}")
    if "harness_error" in d or not d:
        return Verdict(case.index, case.origin, case.args, None, 0.0, 0.0, [f"harness error: {d.get('harness_error')}"])
    return Verdict(**d)


def default_exe() -> list[str]:
    return [sys.executable, "-m", "onnxdoctor"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--replay", type=int, default=None, help="run only case INDEX of --seed (kept in bench/out/fuzz/replay)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per command before it counts as a hang")
    ap.add_argument("--max-rss-mb", type=float, default=3000.0, help="peak RSS budget per command")
    ap.add_argument("--max-as-mb", type=int, default=12000, help="hard address-space limit per command (0: none)")
    ap.add_argument("--json", type=Path, default=None, help="write the summary here")
    ap.add_argument("--exe", default=None, help="command to run onnxdoctor (default: this Python -m onnxdoctor, with src/ first)")
    args = ap.parse_args(argv)
    # The harness builds hostile models itself: keep a runaway case from taking the machine.
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))
    exe = args.exe.split() if args.exe else default_exe()
    if args.exe is None:
        os.environ["PYTHONPATH"] = str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
    if args.replay is not None:
        root = OUT / "replay"
        shutil.rmtree(root, ignore_errors=True)
        case = make_case(args.seed, args.replay, root / "cases")
        print(f"case {args.replay} of seed {args.seed}: {case.origin}\n  folder {case.folder}\n  onnxdoctor "
              f"{' '.join(a.replace('{time_limit}', time_limit(args.timeout)) for a in case.args)}")
        import copy

        keep = copy.deepcopy(case)
        verdict = run_case(case, exe, timeout=args.timeout, max_rss_mb=args.max_rss_mb, max_as_mb=args.max_as_mb,
                           scratch=root / "scratch")
        print(json.dumps(asdict(verdict), indent=1, default=str))
        del keep
        return 1 if verdict.violations else 0
    summary = campaign(args.seed, args.minutes * 60, exe, timeout=args.timeout, max_rss_mb=args.max_rss_mb,
                       max_as_mb=args.max_as_mb, start=args.start)
    text = json.dumps(summary, indent=1, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
    return 1 if summary["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
