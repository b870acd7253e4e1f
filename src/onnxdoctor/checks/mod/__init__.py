"""MOD family: problems with the model file itself (weights, shape inference)."""
