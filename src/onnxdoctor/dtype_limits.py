"""The limits of the numeric types onnxdoctor reasons about, defined once: rules, rewrites and verify
import them from here (tests/test_dtype_limits.py checks each against numpy/ml_dtypes, and that no
other module spells one)."""

from __future__ import annotations

# IEEE binary32: the largest finite value, (2 - 2**-23) * 2**127.
FP32_MAX = 3.4028234663852886e38

# IEEE binary16: the largest finite value, (2 - 2**-10) * 2**15; magnitudes from FP16_OVERFLOW on
# (FP16_MAX plus half a unit in the last place) round to inf; FP16_TINY is the smallest subnormal.
FP16_MAX = 65504.0
FP16_OVERFLOW = 65520.0
FP16_TINY = 2.0**-24

# bfloat16: the largest finite value, (2 - 2**-7) * 2**127 (bits 0x7F7F); magnitudes from
# BF16_OVERFLOW, (2 - 2**-8) * 2**127, on round to inf (FP32_MAX, float32's `finfo.min` masks, does).
BF16_MAX = 3.3895313892515355e38
BF16_OVERFLOW = 3.39617752923046e38

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Bytes per element of each ONNX element type; sub-byte types count as one byte (an upper bound is
# enough for a size report).
ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
            17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}
