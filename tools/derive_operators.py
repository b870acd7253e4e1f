#!/usr/bin/env python3
"""Derive onnxdoctor's per-release operator tables and plugin lists.

Reads the onnx-tensorrt operator matrices (``onnx-tensorrt-<release>.md``) and
the TensorRT plugin lists (``tensorrt-<release>-plugins.md``) from the shared
facts directory and writes ``rules/trt/operators/<release>.toml`` and
``rules/trt/plugins.toml`` in the format described in docs/knowledge-base.md.

The matrix is the starting point; the parser source wins where they disagree.
The source-derived facts used for that (importer registrations and importer
dtype assertions) are kept below as data, with the file@commit they come from,
so a run is reproducible without the onnx-tensorrt checkout.

Usage: python3 tools/derive_operators.py [FACTS_DIR] [--out RULES_TRT_DIR]
Stdlib only (python 3.11).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# Matrix "Supported Types" tokens -> ONNX TensorProto.DataType names.
TYPE_MAP = {
    "FP32": "FLOAT",
    "FP16": "FLOAT16",
    "BF16": "BFLOAT16",
    "FP8": "FLOAT8E4M3FN",
    "FP4": "FLOAT4E2M1",
    "INT4": "INT4",
    "INT8": "INT8",
    "UINT8": "UINT8",
    "INT32": "INT32",
    "INT64": "INT64",
    "INF64": "INT64",  # typo in the 10.1/10.14 ConstantOfShape rows
    "BOOL": "BOOL",
    "DOUBLE": "DOUBLE",
}

# Release key -> (matrix file stem, provenance of the matrix, importer source used for the cross-check).
MATRICES = {
    "8.6": (
        "onnx-tensorrt-8.6-GA",
        "onnx-tensorrt docs/operators.md @ release/8.6-GA (identical at release commit 6ba67d3)",
        "8.6",
    ),
    "9.3": ("onnx-tensorrt-9.3", "onnx-tensorrt docs/operators.md @ 9.3 (1def182)", "9.3"),
    "10.1": (
        "onnx-tensorrt-10.1-GA",
        "onnx-tensorrt docs/operators.md @ release/10.1-GA (96e7811, the TensorRT v10.1.0 pin)",
        "10.1",
    ),
    "10.14": ("onnx-tensorrt-10.14", "onnx-tensorrt docs/operators.md @ c727277 (TensorRT v10.14 pin)", "10.16"),
    "10.15": ("onnx-tensorrt-10.15", "onnx-tensorrt docs/operators.md @ fa5aa9f (TensorRT v10.15 pin)", "10.16"),
    "10.16": ("onnx-tensorrt-10.16", "onnx-tensorrt docs/operators.md @ 6bde659 (TensorRT v10.16 pin)", "10.16"),
    "11.0": ("onnx-tensorrt-11.0", "onnx-tensorrt docs/operators.md @ 2f3fa349 (header TensorRT 11.0)", "10.16"),
    "11.1": ("onnx-tensorrt-11.1", "onnx-tensorrt docs/operators.md @ 7c51a63 (TensorRT v11.1 pin)", "10.16"),
}

CUSTOM_OP_DOCS = {
    "11.0": "onnx-tensorrt-11.0-TRT_custom_ops",
    "11.1": "onnx-tensorrt-11.1-TRT_custom_ops",
}

# --- Facts read from the onnx-tensorrt parser source -------------------------------------------
# Names registered with DEFINE_BUILTIN_OP_IMPORTER, per source revision we could read.
_IMP_86 = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout Einsum
Elu Equal Erf Exp Expand EyeLike FallbackPluginImporter Flatten Floor GRU Gather GatherElements GatherND Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization HardSigmoid
HardSwish Identity If ImageScaler InstanceNormalization IsInf IsNaN LRN LSTM LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mod
Mul Neg NonMaxSuppression NonZero Not OneHot Or PRelu Pad ParametricSoftplus Pow QuantizeLinear RNN RandomNormal
RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp
ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RoiAlign
Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax
Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum TRT_AveragePool TRT_Conv TRT_Deconv
TRT_FP8DequantizeLinear TRT_FP8QuantizeLinear TRT_FloorDiv TRT_FullyConnected TRT_Gather TRT_MatMul
TRT_MaxAverageBlendPool TRT_MaxPool TRT_PluginV2 TRT_RNNv2 TRT_RaggedSoftmax TRT_Resize TRT_Scale TRT_Shuffle
TRT_Slice TRT_TopK_Min Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
IMPORTERS: dict[str, set[str]] = {"8.6": set(_IMP_86.split())}
# 9.0-EA adds LocalFunctionImporter; 9.1 CastLike; 9.2 Hardmax; 9.3 == 9.2.
IMPORTERS["9.3"] = IMPORTERS["8.6"] | {"LocalFunctionImporter", "CastLike", "Hardmax"}
# 10.0-EA: +Gelu +Mish +TRT_INT4(De)QuantizeLinear, -TRT_FullyConnected -TRT_RNNv2; 10.1-GA: +DeformConv.
IMPORTERS["10.1"] = (IMPORTERS["9.3"] | {"Gelu", "Mish", "TRT_INT4QuantizeLinear", "TRT_INT4DequantizeLinear",
                                          "DeformConv"}) - {"TRT_FullyConnected", "TRT_RNNv2"}
IMPORTERS["10.16"] = IMPORTERS["10.1"] | {
    "Attention", "BlackmanWindow", "DistCollective", "HammingWindow", "HannWindow", "RMSNormalization",
    "RotaryEmbedding", "STFT", "TensorScatter", "TRT_BlockDequantize", "TRT_BlockQuantize", "TRT_DynamicQuantize",
    "TRT_FP4DynamicQuantize", "TRT_MXFP8DequantizeLinear", "TRT_MXFP8DynamicQuantize", "TRT_MXFP8QuantizeLinear",
    "TRT_QuantizedAttention",
}
IMPORTER_SOURCE = {
    "8.6": "builtin_op_importers.cpp @ release/8.6-GA (ee0b139; same registrations at 6ba67d3)",
    "9.3": "builtin_op_importers.cpp @ 9.3 (1def182)",
    "10.1": "onnxOpImporters.cpp @ release/10.1-GA (96e7811)",
    "10.16": "onnxOpImporters.cpp @ 6bde659 (TensorRT v10.16 pin)",
}
# Registry names that are not ONNX op types.
PSEUDO_IMPORTERS = {"FallbackPluginImporter", "LocalFunctionImporter"}

# Importer dtype assertions that contradict the matrix's "Supported Types" (the source wins).
# op -> list of (first release key it applies to, accepted ONNX types, mode, citation).
# mode "restrict": keep only matrix types the importer accepts; "replace": the importer accepts
# more than the matrix documents, use the accepted set (limited to types the release can represent).
_F = "FLOAT"
_H = "FLOAT16"
_B = "BFLOAT16"
TYPE_FIXES: dict[str, list[tuple[str, set[str], str, str]]] = {
    "LpNormalization": [("8.6", {_F, _H}, "restrict", "importLpNormalization asserts FLOAT/HALF input")],
    "LpPool": [("8.6", {_F, _H}, "restrict", "importLpPool asserts FLOAT/HALF input")],
    "GlobalLpPool": [("9.3", {_F, _H}, "restrict", "importGlobalLpPool asserts FLOAT/HALF input")],
    "HardSwish": [("8.6", {_F, _H, "INT8"}, "restrict", "importHardSwish asserts FLOAT/HALF/INT8 input")],
    "Range": [
        ("8.6", {_F, "INT32"}, "restrict", "importRange asserts INT32 or FLOAT start/limit/delta"),
        ("9.3", {_F, "INT32", "INT64"}, "restrict", "importRange asserts INT32, INT64 or FLOAT start/limit/delta"),
    ],
    "Shrink": [
        ("8.6", {_F, _H, "INT8", "INT32"}, "restrict", "importShrink asserts FLOAT/HALF/INT8/INT32 input"),
        ("9.3", {_F, _H, "INT8", "INT32", "INT64"}, "restrict",
         "importShrink asserts FLOAT/HALF/INT8/INT32/INT64 input"),
    ],
    "NonZero": [
        ("8.6", {_F, _H, "INT32", "INT8", "BOOL"}, "replace", "importNonZero accepts FLOAT/HALF/INT32/INT8/BOOL"),
        ("9.3", {_F, _H, _B, "INT32", "INT64", "INT8", "BOOL"}, "replace",
         "importNonZero accepts FLOAT/HALF/BF16/INT32/INT64/INT8/BOOL"),
    ],
    # Window ops: importer requires output_datatype == 1 ("Output must be float32-type!").
    "BlackmanWindow": [("10.14", {_F}, "replace", "importBlackmanWindow requires output_datatype=1 (FLOAT)")],
    "HammingWindow": [("10.14", {_F}, "replace", "importHammingWindow requires output_datatype=1 (FLOAT)")],
    "HannWindow": [("10.14", {_F}, "replace", "importHannWindow requires output_datatype=1 (FLOAT)")],
    # randomHelper: dtype attribute must be FLOAT or FLOAT16 (default FLOAT).
    "RandomNormal": [("10.14", {_F, _H}, "restrict", "randomHelper accepts dtype FLOAT/FLOAT16 only")],
    "RandomUniform": [("10.14", {_F, _H}, "restrict", "randomHelper accepts dtype FLOAT/FLOAT16 only")],
}

# Importers present in the source but missing from the matrix: added to the table (source wins).
# op -> (first release key, types, citation)
SOURCE_ONLY_OPS = {
    "DistCollective": (
        "10.16",
        ["BFLOAT16", "FLOAT", "FLOAT16"],
        "importDistCollective @ 6bde659; not in operators.md. Types undocumented (importer has no dtype check): "
        "float types assumed",
    ),
}

# ONNX types the parser can represent at all (convertDtype), per release key; used to limit "replace" fixes.
REPRESENTABLE = {
    "8.6": {"BOOL", "DOUBLE", "FLOAT", "FLOAT16", "INT32", "INT64", "INT8", "UINT8"},
    "9.3": {"BFLOAT16", "BOOL", "DOUBLE", "FLOAT", "FLOAT16", "FLOAT8E4M3FN", "INT32", "INT64", "INT8", "UINT8"},
}
REPRESENTABLE["10.1"] = REPRESENTABLE["9.3"] | {"INT4"}
REPRESENTABLE["10.14"] = REPRESENTABLE["10.1"] | {"FLOAT4E2M1"}
# From 10.0 the matrices treat INT8/INT4/FP8/FP4 as quantized-only types and omit them from per-op lists.
QUANTIZED_ONLY = {"INT8", "INT4", "FLOAT8E4M3FN", "FLOAT4E2M1"}

# TensorRT custom ops (non-default domain) documented in TRT_custom_ops.md but absent from the 10.16 source we read.
# TRT_MoE: TensorRT CHANGELOG 11.0 ("Added support for custom operators TRT_Attention, TRT_MoE, TRT_KVCacheUpdate");
# its schema is not documented in TRT_custom_ops.md.
CHANGELOG_CUSTOM_OPS_11 = {"TRT_MoE"}


def vkey(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def parse_matrix(path: Path) -> dict[str, tuple[bool, list[str], list[str]]]:
    """Return op -> (supported, ONNX types, unknown tokens) from an operators.md table."""
    ops: dict[str, tuple[bool, list[str], list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("Operator", "") or set(cells[0]) <= set("-: "):
            continue
        if cells[1] not in ("Y", "N"):
            continue
        op = cells[0]
        supported = cells[1] == "Y"
        types: list[str] = []
        unknown: list[str] = []
        if supported and len(cells) > 2:
            for tok in (t.strip() for t in cells[2].split(",")):
                if not tok:
                    continue
                if tok in TYPE_MAP:
                    types.append(TYPE_MAP[tok])
                else:
                    unknown.append(tok)
        if op in ops:
            raise SystemExit(f"{path.name}: duplicate row for {op}")
        ops[op] = (supported, sorted(set(types)), unknown)
    if not ops:
        raise SystemExit(f"{path.name}: no operator rows found")
    return ops


def parse_custom_ops(path: Path) -> list[str]:
    return sorted(re.findall(r"^## (TRT_\w+)\s*$", path.read_text(encoding="utf-8"), flags=re.M))


def parse_plugins(path: Path) -> list[str]:
    names: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[1] in ("Name", "") or set(cells[1]) <= set("-: "):
            continue
        if line.startswith("|"):
            names.add(cells[1])
    return sorted(names)


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else toml_str(k)


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


def wrap_list(key: str, items: list[str], width: int = 110) -> list[str]:
    one = f"{key} = {toml_list(items)}"
    if len(one) <= width:
        return [one]
    return [f"{key} = ["] + [f"    {toml_str(i)}," for i in items] + ["]"]


def applicable(fixes: list[tuple[str, set[str], str, str]], release: str):
    chosen = None
    for since, types, mode, cite in fixes:
        if vkey(since) <= vkey(release):
            chosen = (since, types, mode, cite)
    return chosen


def representable(release: str) -> set[str]:
    best = max((k for k in REPRESENTABLE if vkey(k) <= vkey(release)), key=vkey)
    return REPRESENTABLE[best]


def derive_release(release: str, facts: Path) -> tuple[str, list[str]]:
    stem, matrix_src, imp_key = MATRICES[release]
    matrix = parse_matrix(facts / f"{stem}.md")
    importers = IMPORTERS[imp_key]
    notes: list[str] = []  # disagreements, reported on stdout
    lines: list[str] = [
        f"# Generated by tools/derive_operators.py from {stem}.md; do not edit by hand.",
        "# An op marked `false` (or absent) has no importer: the parser sends it to the plugin fallback importer.",
    ]
    if imp_key != release:
        lines.append(
            f"# Importer cross-check uses {IMPORTER_SOURCE[imp_key]}: the source of this exact release was not "
            "available."
        )
    lines.append(f"release = {toml_str(release)}")
    lines.append(f"source = {toml_str(f'{matrix_src}; importers checked against {IMPORTER_SOURCE[imp_key]}')}")
    lines.append("")
    lines.append("[ops]")

    table: dict[str, tuple[list[str] | bool, str]] = {}
    for op, (supported, types, unknown) in matrix.items():
        comment = ""
        if unknown:
            comment = f"matrix types column: {', '.join(unknown)}"
        if supported:
            if op not in importers and vkey(release) <= vkey(imp_key):
                # Source wins: a documented op without importer is unsupported.
                table[op] = (False, f"matrix says Y but {IMPORTER_SOURCE[imp_key]} registers no importer")
                notes.append(f"{release}: {op} Y in matrix, no importer")
                continue
            if op not in importers:
                comment = (comment + "; " if comment else "") + (
                    f"not in {IMPORTER_SOURCE[imp_key]} (op added after that revision; matrix kept)"
                )
                notes.append(f"{release}: {op} Y in matrix, not yet in the {imp_key} source read")
            fix = applicable(TYPE_FIXES.get(op, []), release)
            if fix is not None:
                _since, accepted, mode, cite = fix
                if mode == "restrict":
                    fixed = sorted(t for t in types if t in accepted)
                else:
                    allowed = accepted & representable(release)
                    if vkey(release) >= vkey("10.0"):
                        allowed -= QUANTIZED_ONLY
                    fixed = sorted(allowed)
                if fixed != types:
                    comment = (comment + "; " if comment else "") + (
                        f"matrix lists {', '.join(types) or 'no types'}; source: {cite}"
                    )
                    notes.append(f"{release}: {op} types {types} -> {fixed} ({cite})")
                    types = fixed
            if not types:
                comment = (comment + "; " if comment else "") + "no types documented"
            table[op] = (types, comment)
        else:
            if op in importers:
                table[op] = (False, f"matrix says N although {IMPORTER_SOURCE[imp_key]} registers an importer")
                notes.append(f"{release}: {op} N in matrix but importer exists")
            else:
                table[op] = (False, comment)
    for op, (since, types, cite) in SOURCE_ONLY_OPS.items():
        if vkey(since) <= vkey(release) and op not in table and op in importers:
            table[op] = (types, f"absent from the matrix; {cite}")
            notes.append(f"{release}: {op} has an importer but is not in the matrix (added)")

    for op in sorted(table):
        value, comment = table[op]
        rendered = "false" if value is False else toml_list(value)  # type: ignore[arg-type]
        line = f"{toml_key(op)} = {rendered}"
        if comment:
            line += f"  # {comment}"
        lines.append(line)

    # TensorRT's own ops: imported by op_type (the parser ignores node.domain), listed under a "trt" domain.
    trt_ops = {op for op in importers if op.startswith("TRT_")}
    trt_src = [f"TRT_* importers in {IMPORTER_SOURCE[imp_key]}"]
    if release in CUSTOM_OP_DOCS:
        documented = parse_custom_ops(facts / f"{CUSTOM_OP_DOCS[release]}.md")
        trt_ops |= set(documented)
        trt_ops |= CHANGELOG_CUSTOM_OPS_11
        trt_src.append(f"docs/TRT_custom_ops.md ({', '.join(documented)})")
        trt_src.append("TensorRT CHANGELOG 11.0 (TRT_MoE)")
    lines.append("")
    lines.append("# TensorRT custom ops. The parser matches them by op_type alone, whatever node.domain says.")
    lines.append(f"# From: {'; '.join(trt_src)}.")
    lines.append("[domains]")
    lines.extend(wrap_list("trt", sorted(trt_ops)))
    return "\n".join(lines) + "\n", notes


PLUGIN_LISTS = {
    "8.6": ("tensorrt-8.6.1-plugins", "TensorRT OSS plugin/README.md @ release/8.6 (8.6.1)"),
    "10.8": ("tensorrt-10.8.0-plugins", "TensorRT OSS plugin/README.md @ release/10.8 (10.8.0)"),
    "10.16": ("tensorrt-10.16-plugins", "TensorRT OSS plugin/README.md @ release/10.16"),
    "11.1": ("tensorrt-11.1-plugins", "TensorRT OSS plugin/README.md @ release/11.1"),
}
# Registered names that initLibNvInferPlugins no longer creates from 11.0 (VERSIONS.md section 2.6: diff of
# plugin/api/inferPlugin.cpp release/10.16 -> release/11.0 plus removed plugin directories).
REMOVED_IN_11_0 = [
    "BatchTilePlugin_TRT", "BatchedNMSDynamic_TRT", "BatchedNMS_TRT", "Clip_TRT", "CoordConvAC", "CropAndResize",
    "CustomGeluPluginDynamic", "EfficientNMS_ONNX_TRT", "LReLU_TRT", "NMSDynamic_TRT", "NMS_TRT", "Normalize_TRT",
    "Proposal", "ProposalDynamic", "SpecialSlice_TRT", "Split",
]


def derive_plugins(facts: Path) -> tuple[str, list[str]]:
    notes: list[str] = []
    lines = [
        "# Generated by tools/derive_operators.py from the tensorrt-*-plugins.md lists; do not edit by hand.",
        "# names: registered plugin names (the `Name` column), deduplicated; a node whose op_type is one of them",
        "# parses through the plugin fallback importer if the plugin is registered at parse time.",
    ]
    for key, (stem, src) in PLUGIN_LISTS.items():
        names = parse_plugins(facts / f"{stem}.md")
        lines.append("")
        lines.append(f"[lists.{toml_str(key)}]")
        lines.append(f"source = {toml_str(src + ' (Contents table)')}")
        if key == "11.1":
            still = sorted(set(names) & set(REMOVED_IN_11_0))
            if still:
                notes.append(f"plugins 11.1: listed although removed in 11.0: {still}")
            names = sorted(set(names) - set(REMOVED_IN_11_0))
        lines.extend(wrap_list("names", names))
        if key == "11.1":
            lines.append("# No longer registered from 11.0 (VERSIONS.md section 2.6; TensorRT CHANGELOG 11.0).")
            lines.extend(wrap_list("removed", REMOVED_IN_11_0))
    return "\n".join(lines) + "\n", notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("facts", nargs="?", default="../shared/trt-operators", type=Path)
    parser.add_argument("--out", default=Path(__file__).resolve().parent.parent / "rules" / "trt", type=Path)
    args = parser.parse_args(argv)
    if not args.facts.is_dir():
        print(f"facts directory not found: {args.facts}", file=sys.stderr)
        return 2
    opdir = args.out / "operators"
    opdir.mkdir(parents=True, exist_ok=True)
    all_notes: list[str] = []
    for release in sorted(MATRICES, key=vkey):
        text, notes = derive_release(release, args.facts)
        (opdir / f"{release}.toml").write_text(text, encoding="utf-8")
        all_notes.extend(notes)
        print(f"wrote {opdir / (release + '.toml')}")
    text, notes = derive_plugins(args.facts)
    (args.out / "plugins.toml").write_text(text, encoding="utf-8")
    print(f"wrote {args.out / 'plugins.toml'}")
    all_notes.extend(notes)
    for note in all_notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
