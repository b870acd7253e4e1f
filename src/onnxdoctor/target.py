"""What a check is for: the TensorRT release, the precision intent, plugins and input shapes."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError
from .kb import KnowledgeBase, Release, knowledge_base

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")


@dataclass(frozen=True)
class Target:
    trt: str
    precision: str | None = None  # None: derive (fp32 on 10.x, from the graph on 11.x)
    plugins: frozenset[str] = frozenset()
    shapes: dict = field(default_factory=dict, hash=False, compare=False)
    kb: KnowledgeBase = field(default=None, repr=False, hash=False, compare=False)  # type: ignore[assignment]

    @classmethod
    def make(
        cls,
        trt: str | None = None,
        *,
        precision: str | None = None,
        plugins=(),
        shapes: dict | None = None,
        kb: KnowledgeBase | None = None,
    ) -> Target:
        kb = kb or knowledge_base()
        version = kb.resolve(trt)
        if precision is not None and precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        return cls(version, precision, frozenset(plugins), dict(shapes or {}), kb)

    @property
    def release(self) -> Release:
        return self.kb.release(self.trt)

    def to_dict(self) -> dict:
        out: dict = {"trt": self.trt}
        if self.precision:
            out["precision"] = self.precision
        if self.plugins:
            out["plugins"] = sorted(self.plugins)
        return out
