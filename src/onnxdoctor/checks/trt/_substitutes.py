"""When a TRT finding names a rewrite that replaces the node or the type it is about: op
substitutions (TRT101, TRT102, TRT113), inlining first inside local functions, and computing small
integer types in INT32 (TRT111, TRT113, TRT121). Which rewrite does what is data in rule_fixes."""

from __future__ import annotations

from ...findings import Fix
from ...rule_fixes import fix_for, substitution_for

_SMALL_INTS = {"UINT8", "INT16", "UINT16", "UINT32"}


# Substitutions that depend on the rank of an input: (domain, op) -> (input, {rank: rewrite}). A node
# of another (known) rank names no rewrite. deform-conv-to-grid-sample samples with a 4-D GridSample
# (2 spatial dims); the releases without DeformConv (before 10.1) have no volumetric GridSample, so
# 3 spatial dims take deform-conv-3d-to-gathers.
BY_RANK: dict[tuple[str, str], tuple[int, dict[int, str]]] = {
    ("", "DeformConv"): (0, {4: "deform-conv-to-grid-sample", 5: "deform-conv-3d-to-gathers"}),
}


def node_fix(code: str, node) -> Fix | None:
    """The substitution for a node (a model.NodeRef) of a `code` finding; inside a local function's
    body, where the substitutions do not reach, the fix is to inline the function first."""
    fix = substitution_for(code, node.op_type, node.domain)
    if fix is None:
        return None
    by_rank = BY_RANK.get((node.domain, node.op_type))
    if by_rank is not None and node.node.input:
        rank = node.graph.rank_of(node.node.input[by_rank[0]])
        if rank is not None:
            name = by_rank[1].get(rank)
            if name is None:
                return None
            fix = fix_for(code, name)
    graph = node.graph
    while graph is not None:
        if graph.function is not None:
            return fix_for(code, "inline-local-functions")
        graph = graph.outer
    return fix


def small_int_fix(code: str, release, type_name: str, role: str, opset: int) -> Fix | None:
    """`small-int-to-int32` for a UINT8/INT16/UINT16/UINT32 value inside the network (not a main-graph
    input or output): computed in INT32 (UINT32: INT64, when the release's Mod takes INT64)."""
    if type_name not in _SMALL_INTS or role in ("input", "output") or opset < 10:
        return None
    if type_name == "UINT32" and "INT64" not in release.ops.get("Mod", ()):
        return None
    return fix_for(code, "small-int-to-int32")


# Standard ops no TensorRT release imports and no graph of imported ops computes, with the reason:
# TRT101 says so in its hint and points to the plugin route (docs/rules/TRT101.md lists them).
NO_EQUIVALENT: dict[str, str] = {
    "Unique": "its output's length and order depend on the values, and no layer deduplicates",
    "StringNormalizer": "TensorRT has no string tensors",
    "StringSplit": "TensorRT has no string tensors",
    "StringConcat": "TensorRT has no string tensors",
    "RegexFullMatch": "TensorRT has no string tensors",
    "ImageDecoder": "decoding JPEG/PNG bytes is not something TensorRT's layers express",
    "Bernoulli": "it draws random numbers, and no rewrite can be proven equal to a random draw",
    "Multinomial": "it draws random numbers, and no rewrite can be proven equal to a random draw",
    "BitCast": "TensorRT cannot reinterpret a tensor's bits as another type",
    "Det": "a determinant needs a pivoting factorization that TensorRT's layers do not express",
}


def no_equivalent_hint(op_type: str) -> str | None:
    """The hint of a TRT101 finding on an op without an equivalent graph (None for the others)."""
    why = NO_EQUIVALENT.get(op_type)
    if why is None:
        return None
    return (f"no graph of TensorRT-imported ops computes {op_type}: {why}. Keep it outside the engine, "
            f"or implement a TensorRT plugin named {op_type} and pass --plugin {op_type}")
