"""Loading a model safely, and the read-only views of it that rules and rewrites share.

`load()` is the only way a model enters onnxdoctor. It parses the protobuf without reading external
weights, validates external-data references, checks the graph is well formed (no cycles, no dangling
inputs, sane dims), and runs ONNX shape inference once. Every malformed input becomes a
`ModelLoadError` with one clear line. One module per concern:

- graph.py: the views of one graph (types, producers/consumers, NodeRef, inline tensor values)
- core.py: `Model`, the proto and its graph views, built on first use
- constants.py: build-time constant evaluation (ConstantView)
- validate.py: load-time validation
- inference.py: ONNX shape inference and the helper process's result (the only reader of either)
- loading.py: `load` and `from_proto`
"""

from __future__ import annotations

from .._typeinfo import GRAPH_ATTR_OPS
from ..errors import ModelLoadError
from ..external import TENSOR_OR_GRAPH_ATTR_OPS
from .constants import FOLDABLE_OPS, ConstantView
from .core import MAX_SUBGRAPH_DEPTH, Model
from .graph import MAX_VALUE_ELEMENTS, ExternalRef, Graph, LazyBytes, NodeRef, TensorType, TypeTable, attribute_value, dtype_name, tensor_value
from .inference import run_shape_inference
from .loading import PROTOBUF_LIMIT, from_proto, load
from .validate import MAX_ELEMENTS, repair_text

__all__ = [
    "FOLDABLE_OPS", "GRAPH_ATTR_OPS", "MAX_ELEMENTS", "MAX_SUBGRAPH_DEPTH", "MAX_VALUE_ELEMENTS", "PROTOBUF_LIMIT",
    "TENSOR_OR_GRAPH_ATTR_OPS", "ConstantView", "ExternalRef", "Graph", "LazyBytes", "Model", "ModelLoadError",
    "NodeRef", "TensorType", "TypeTable", "attribute_value", "dtype_name", "from_proto", "load", "repair_text",
    "run_shape_inference", "tensor_value",
]
