"""MOD507 no-graph-output."""

from __future__ import annotations

from ...findings import Severity
from ...rule import Context, Rule


class NoGraphOutput(Rule):
    """The main graph declares no outputs.

    ## What it does
    Reports a model whose main graph has no `output`: nothing it computes leaves it. The ONNX
    checker accepts such a graph; every node in it is dead (GRF402 says which).

    ## Why it breaks TensorRT
    The parser marks the graph's outputs as the network's outputs; with none, the network has
    none, and the builder refuses it ("Network must have at least one output", then "Network
    validation failed"): no engine is built. ONNX Runtime loads the model but refuses to run it
    ("At least one output should be requested"), so nothing can be verified either.

    ## Example
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2] x) => () {
          y = Relu(x)
        }

    ## How to fix
    Declare the values the model is meant to compute as graph outputs (re-export with the
    outputs named, or add them: `graph.output.append(onnx.helper.make_tensor_value_info(...))`).

    ## Fix safety
    No automatic fix: which values are the outputs is not in the model.

    ## TensorRT versions
    All releases.

    ## Sources
    TensorRT's builder (network validation: "Network must have at least one output", reported in
    NVIDIA/TensorRT issues 183, 319 and 814); ONNX IR specification (a graph's outputs are the
    values it produces); ONNX Runtime's `InferenceSession::Run` ("At least one output should be
    requested").
    """

    code = "MOD507"
    name = "no-graph-output"
    severity = Severity.ERROR
    release_independent = True
    summary = "the main graph declares no outputs: TensorRT builds no engine from it"

    def check(self, ctx: Context):
        if ctx.model.main.outputs:
            return
        yield self.finding(
            ctx, "the main graph declares no outputs: the TensorRT network would have none, and the builder "
                 "refuses it (\"Network must have at least one output\")",
            versions=ctx.kb.versions, hint="declare the values the model computes as graph outputs",
        )
