"""What the rules and the rewrites both look for in a graph: each detector here is the one a GRF rule
reports with and its rewrite replaces with, so `check` shows exactly what `fix` does.

Modules by subject (imported one by one: `check` pays only for what its rules use):
`decomposed` (LayerNorm/RMSNorm/GELU written out), `noops`, `duplicates`, `layout_chains`,
`constant_arithmetic`, `batch_norm`, `shape_values`. They read the checked views of onnxdoctor.model
and import nothing of onnx beyond what `check` loads."""
