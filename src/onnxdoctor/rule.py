"""The rule interface: a small unit with a code, a name, a severity, its own documentation and a check."""

from __future__ import annotations

import functools
import inspect
import re
from typing import ClassVar, Iterable

from .findings import Applicability, Finding, Fix, Severity, make_finding, make_location
from .kb import Release
from .model import Model, NodeRef
from .rule_fixes import fix_for, fixes_for
from .target import Target

DOC_HEADINGS = ("What it does", "Why it breaks TensorRT", "Example", "How to fix", "Fix safety", "TensorRT versions", "Sources")
_RULE_FIX = object()  # Rule.finding's default: the rule's only fix


class Rule:
    """Base class. Subclasses set the class attributes and implement `check`.

    The class docstring is the rule's documentation, with the `## Heading` sections in DOC_HEADINGS;
    `onnxdoctor explain` and docs/rules/ are generated from it. The rewrites that fix its findings
    come from the table in rule_fixes.py.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.ERROR
    summary: ClassVar[str]
    # True when the rule's findings do not depend on the target (release, precision, plugins): a run
    # over several releases (`--trt all`) then runs it once. Messages must not name the release.
    release_independent: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "fix" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: a rule's fixes come from rule_fixes.RULE_FIXES, not a `fix` attribute")

    @property
    def family(self) -> str:
        return re.match(r"[A-Z]+", self.code).group(0)  # type: ignore[union-attr]

    def check(self, ctx: Context) -> Iterable[Finding]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def fixes(self) -> tuple[Fix, ...]:
        """The rewrites that resolve this rule's findings (rule_fixes.RULE_FIXES)."""
        return fixes_for(self.code)

    def fix_by(self, rewrite: str) -> Fix:
        """The Fix naming `rewrite`, for a finding of this rule; the table must list the pair."""
        return fix_for(self.code, rewrite)

    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        text = cls.doc()
        sections: dict[str, str] = {}
        current = None
        for line in text.splitlines():
            m = re.match(r"^## (.+?)\s*$", line)
            if m:
                current = m.group(1)
                sections[current] = ""
            elif current is not None:
                sections[current] += line + "\n"
        return {k: v.strip() for k, v in sections.items()}

    def finding(
        self,
        ctx: Context,
        message: str,
        *,
        node: NodeRef | None = None,
        tensor: str | None = None,
        subgraph: tuple[str, ...] = (),
        severity: Severity | None = None,
        versions: Iterable[str] | None = None,
        hint: str | None = None,
        fix: Fix | None | object = _RULE_FIX,
    ) -> Finding:
        """A finding of this rule. `fix`: by default the rule's fix when the table lists exactly one
        rewrite for it (else none); None for a finding no rewrite resolves."""
        if fix is _RULE_FIX:
            fix = _only_fix(self.code)
        if node:
            g = node.graph
            loc = make_location(node.name, node.op_type, tensor, g.path)
            order: tuple[int, ...] = (ctx.graph_position(g), node.index)
        else:
            loc, order = make_location(None, None, tensor, subgraph), ()
        return make_finding(
            self.code, self.name, severity if severity is not None else self.severity, message, loc,
            (ctx.all_versions if versions is ctx.kb.versions or (versions is None and self.release_independent)
             else tuple(versions) if versions is not None else (ctx.target.trt,)),
            fix, hint, order,  # type: ignore[arg-type]
        )


@functools.lru_cache(maxsize=None)
def _only_fix(code: str) -> Fix | None:
    """The rule's fix when rule_fixes.RULE_FIXES lists exactly one rewrite for it (a literal table:
    looked up once per rule, not per finding), else None."""
    listed = fixes_for(code)
    return listed[0] if len(listed) == 1 else None


class Context:
    """What a rule sees: the model, the target, and caches shared between rules of one run.

    `cache` (`memo`) holds what may depend on the release; `shared` (`model_memo`) holds analyses of
    the model alone, shared by the Contexts of one model across the releases of a `--trt all` run."""

    def __init__(self, model: Model, target: Target, cache: dict | None = None, shared: dict | None = None) -> None:
        self.model = model
        self.target = target
        self.cache: dict = {} if cache is None else cache
        self.shared: dict = {} if shared is None else shared
        self.release: Release = self.target.release
        self.kb = self.target.kb
        # Every release, shared by the findings that name them all (thousands on a big model).
        self.all_versions: tuple[str, ...] = tuple(self.kb.versions)

    @property
    def precisions(self) -> frozenset[str]:
        """The precisions the engine is meant to run in: `--precision` if given; on strongly typed
        releases (11.x) derived from the float types in the graph; otherwise fp32."""
        return self.memo("precisions", self._precisions)

    @property
    def precision_source(self) -> str:
        """'flag', 'graph' or 'default': where `precisions` came from."""
        if self.target.precision:
            return "flag"
        return "graph" if self.release.strongly_typed else "default"

    def _precisions(self) -> frozenset[str]:
        if self.target.precision:
            return frozenset({self.target.precision})
        if not self.release.strongly_typed:
            return frozenset({"fp32"})
        from ._onnx import TensorProto

        names = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16",
                 TensorProto.FLOAT8E4M3FN: "fp8", TensorProto.INT8: "int8"}
        found = {names[e] for g in self.model.graphs for kind, e in g.type_summary[0] if e in names}
        return frozenset(found or {"fp32"})

    def nodes(self) -> list[NodeRef]:
        """Every node of every graph (built once per run: rules iterate it many times)."""
        return self.model_memo("nodes", lambda: list(self.model.iter_nodes()))

    def op_index(self) -> dict[tuple[str, str], list[NodeRef]]:
        """(domain, op_type) -> nodes, in graph order ('' is the standard domain). Built once per run, so a
        rule about a few op types visits those nodes only, not the whole graph."""

        def build() -> dict[tuple[str, str], list[NodeRef]]:
            # From each graph's standard-op positions (read from the protos once); other domains node by node.
            index: dict[tuple[str, str], list[NodeRef]] = {}
            for g in self.model.graphs:
                refs = g.refs()  # the index holds every node
                for op, idxs in g.op_positions.items():
                    index.setdefault(("", op), []).extend([refs[i] for i in idxs])
                if not g.all_standard:
                    for i, std in enumerate(g.standard):
                        if not std:
                            r = refs[i]
                            index.setdefault((r.domain, r.op_type), []).append(r)
            return index

        return self.model_memo("op-index", build)

    def nodes_of(self, *op_types: str) -> list[NodeRef]:
        """Standard-domain nodes of the given op types, in graph order."""
        index = self.op_index()
        if len(op_types) == 1:
            return index.get(("", op_types[0]), [])
        return self.model_memo(("nodes-of", op_types), lambda: self._merged(index, op_types))

    def attribute_names(self, op_type: str) -> frozenset[str]:
        """The names of the attributes that standard-domain nodes of `op_type` carry, over all of them
        (read from the protos once per model): a rule about an attribute that no node sets decides
        every node at once."""
        return self.model_memo(("attribute-names", op_type), lambda: frozenset(
            a.name for ref in self.nodes_of(op_type) for a in ref.node.attribute[:]))

    def _merged(self, index, op_types: tuple[str, ...]) -> list[NodeRef]:
        hits = [ref for op in op_types for ref in index.get(("", op), ())]
        if len(hits) > 1:
            if len(self.model.graphs) == 1:
                hits.sort(key=_node_index)
            else:
                hits.sort(key=lambda r: (self.graph_position(r.graph), r.index))
        return hits

    def graph_position(self, graph) -> int:
        """Index of `graph` in `model.graphs` (main graph first)."""
        positions = self.shared.get("graph-positions")
        if positions is None:
            positions = self.shared["graph-positions"] = {id(g): k for k, g in enumerate(self.model.graphs)}
        return positions[id(graph)]

    def memo(self, key, compute):
        """`compute()` once per run (one release)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def model_memo(self, key, compute):
        """`compute()` once per model: only for results that do not depend on the release or the target."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]


def _node_index(ref: NodeRef) -> int:
    return ref.index


__all__ = ["Applicability", "Context", "DOC_HEADINGS", "Finding", "Fix", "Rule", "Severity"]
