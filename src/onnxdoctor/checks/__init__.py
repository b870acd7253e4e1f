"""Rule implementations, one module per rule, grouped by family (trt/, mod/, ...)."""
