"""When a TRT finding names a rewrite that replaces the node or the type it is about: op
substitutions (TRT101, TRT102, TRT113), inlining first inside local functions, and computing small
integer types in INT32 (TRT111, TRT113, TRT121). Which rewrite does what is data in rule_fixes."""

from __future__ import annotations

from ...findings import Fix
from ...rule_fixes import fix_for, substitution_for

_SMALL_INTS = {"UINT8", "INT16", "UINT16", "UINT32"}


def node_fix(code: str, node) -> Fix | None:
    """The substitution for a node (a model.NodeRef) of a `code` finding; inside a local function's
    body, where the substitutions do not reach, the fix is to inline the function first."""
    fix = substitution_for(code, node.op_type, node.domain)
    if fix is None:
        return None
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
