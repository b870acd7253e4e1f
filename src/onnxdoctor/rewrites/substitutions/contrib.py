"""Substitutions for ONNX Runtime contrib ops (`com.microsoft`) that ORT's transformer optimizer
leaves in a model: standard ONNX equivalents TensorRT can import (TRT102)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ._build import Builder, Skip, Substitution

MS = "com.microsoft"


class _Contrib(Substitution):
    domain = MS
    resolves = ("TRT102",)


def _transpose_perm(rank: int, trans: bool, trans_batch: bool) -> list[int] | None:
    """FusedMatMul's operand permutation: transBatch moves dim 0 behind the batch dims
    ([d0, b.., m, k] -> [b.., d0, m, k] read as [b.., d0, k]...), trans swaps the last two."""
    perm = list(range(rank))
    if trans_batch and rank > 2:
        perm = perm[1:rank - 1] + [0, rank - 1]
    if trans:
        perm[-2], perm[-1] = perm[-1], perm[-2]
    return None if perm == list(range(rank)) else perm


class FusedMatmulToMatmul(_Contrib):
    """Replace `com.microsoft::FusedMatMul` by `Transpose` + `MatMul` (+ `Mul` by alpha).

    ## What it does
    `FusedMatMul(A, B, alpha, transA, transB, transBatchA, transBatchB)` becomes
    `Mul(MatMul(Transpose(A), Transpose(B)), alpha)`, with each Transpose only where the
    attributes ask for one and the Mul only when alpha is not 1.

    ## When it applies
    TRT102 on `com.microsoft::FusedMatMul` (left by ONNX Runtime's optimizer; no TensorRT importer).
    Skipped when a transpose is needed and the operand's rank is unknown, or an operand is 1-D
    with a transpose attribute set.

    ## Example
    `y = FusedMatMul<alpha=0.125, transB=1>(q, k)` with 4-D `k` becomes
    `y = Mul(MatMul(q, Transpose<perm=[0,1,3,2]>(k)), 0.125)`.

    ## Safety
    Safe: the same products and scaling; ONNX Runtime's kernel applies alpha inside the GEMM, so
    results agree to float rounding.

    ## Resolves
    TRT102
    """

    name = "fused-matmul-to-matmul"
    summary = "replace com.microsoft::FusedMatMul by Transpose + MatMul + Mul"
    op_type = "FusedMatMul"

    def replace(self, b: Builder) -> None:
        a, bb = b.node.input[0], b.node.input[1]
        dtype = b.float_type(a, bb)
        operands = []
        for x, t, tb, label in ((a, "transA", "transBatchA", "A"), (bb, "transB", "transBatchB", "B")):
            trans, batch = bool(b.attr(t, 0)), bool(b.attr(tb, 0))
            if not (trans or batch):
                operands.append(x)
                continue
            rank = b.rank(x)
            if rank is None:
                raise Skip(f"operand {label} needs a transpose and its rank is unknown")
            if rank < 2:
                raise Skip(f"operand {label} is {rank}-D with {t}/{tb} set")
            perm = _transpose_perm(rank, trans, batch)
            operands.append(b.op("Transpose", [x], perm=perm) if perm else x)
        alpha = float(b.attr("alpha", 1.0))
        y = b.node.output[0]
        if alpha == 1.0:
            b.op("MatMul", operands, y)
        else:
            b.mul(b.op("MatMul", operands), b.const(alpha, dtype, "alpha"), y)


class ContribGeluToErf(_Contrib):
    """Replace `com.microsoft::Gelu` by the ONNX `Gelu` or its Erf form.

    ## What it does
    `com.microsoft::Gelu(x)` becomes the standard `Gelu(x)` when the model's opset is 20 or newer
    and the target release imports Gelu; otherwise `0.5 * x * (1 + Erf(x / sqrt(2)))`.

    ## When it applies
    TRT102 on `com.microsoft::Gelu`: an error before TensorRT 10.0 (no Gelu importer), a warning
    from 10.0 (the parser ignores the domain and uses the ONNX Gelu importer).

    ## Example
    `y = com.microsoft.Gelu(x)` becomes `Mul(Mul(x, 0.5), Add(Erf(Mul(x, 0.70710677)), 1))`.

    ## Safety
    Safe: the contrib op computes the exact (Erf) GELU.

    ## Resolves
    TRT102
    """

    name = "contrib-gelu-to-erf"
    summary = "replace com.microsoft::Gelu by ONNX Gelu or its Erf form"
    op_type = "Gelu"

    def replace(self, b: Builder) -> None:
        x, y = b.node.input[0], b.node.output[0]
        dtype = b.float_type(x)
        if b.opset >= 20 and "Gelu" in b.ctx.target.release.ops:
            b.op("Gelu", [x], y)
        else:
            b.gelu_erf(x, dtype, y)


class BiasGeluToAddErf(_Contrib):
    """Replace `com.microsoft::BiasGelu` by `Add` + the Erf form of GELU.

    ## What it does
    `BiasGelu(x, bias)` becomes `t = Add(x, bias); 0.5 * t * (1 + Erf(t / sqrt(2)))`.

    ## When it applies
    TRT102 on `com.microsoft::BiasGelu` (ONNX Runtime's fusion of a MatMul bias with GELU in BERT
    style models); no TensorRT release imports it.

    ## Example
    `y = com.microsoft.BiasGelu(h, b)` becomes `t = Add(h, b); y = Mul(Mul(t, 0.5), Add(Erf(Mul(t, 0.70710677)), 1))`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "bias-gelu-to-add-erf"
    summary = "replace com.microsoft::BiasGelu by Add + Erf-form GELU"
    op_type = "BiasGelu"

    def replace(self, b: Builder) -> None:
        x, bias = b.node.input[0], b.input(1)
        dtype = b.float_type(x, bias)
        t = b.add(x, bias) if bias else x
        b.gelu_erf(t, dtype, b.node.output[0])


class FastGeluToTanh(_Contrib):
    """Replace `com.microsoft::FastGelu` by the Tanh form of GELU (with its optional bias).

    ## What it does
    `FastGelu(x, bias?)` becomes `t = x + bias; 0.5 * t * (1 + Tanh(sqrt(2/pi) * (t + 0.044715 t^3)))`.

    ## When it applies
    TRT102 on `com.microsoft::FastGelu`; no TensorRT release imports it.

    ## Example
    `y = com.microsoft.FastGelu(x)` becomes the Tanh-form subgraph of `x`.

    ## Safety
    Safe: the definition of the contrib op (tanh approximation of GELU), evaluated elementwise.

    ## Resolves
    TRT102
    """

    name = "fast-gelu-to-tanh"
    summary = "replace com.microsoft::FastGelu by the Tanh form of GELU"
    op_type = "FastGelu"

    def replace(self, b: Builder) -> None:
        x, bias = b.node.input[0], b.input(1)
        dtype = b.float_type(x, bias)
        t = b.add(x, bias) if bias else x
        b.gelu_tanh(t, dtype, b.node.output[0])


class QuickGeluToSigmoidMul(_Contrib):
    """Replace `com.microsoft::QuickGelu` by `x * Sigmoid(alpha * x)`.

    ## What it does
    `QuickGelu(x, alpha=1.702)` becomes `Mul(x, Sigmoid(Mul(x, alpha)))`.

    ## When it applies
    TRT102 on `com.microsoft::QuickGelu` (CLIP-style models after ORT's optimizer); no TensorRT
    release imports it.

    ## Example
    `y = com.microsoft.QuickGelu(x)` becomes `y = Mul(x, Sigmoid(Mul(x, 1.702)))`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "quick-gelu-to-sigmoid-mul"
    summary = "replace com.microsoft::QuickGelu by x * Sigmoid(alpha * x)"
    op_type = "QuickGelu"

    def replace(self, b: Builder) -> None:
        x = b.node.input[0]
        dtype = b.float_type(x)
        alpha = float(b.attr("alpha", 1.702))
        z = x if alpha == 1.0 else b.mul(x, b.const(alpha, dtype, "alpha"))
        b.mul(x, b.op("Sigmoid", [z]), b.node.output[0])


class BiasAddToAdd(_Contrib):
    """Replace `com.microsoft::BiasAdd` by two `Add`s.

    ## What it does
    `BiasAdd(x, bias, skip)` becomes `Add(Add(x, bias), skip)`.

    ## When it applies
    TRT102 on `com.microsoft::BiasAdd` (diffusion UNet optimizations); no TensorRT release imports it.

    ## Example
    `y = com.microsoft.BiasAdd(x, b, s)` becomes `y = Add(Add(x, b), s)`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "bias-add-to-add"
    summary = "replace com.microsoft::BiasAdd by Add + Add"
    op_type = "BiasAdd"

    def replace(self, b: Builder) -> None:
        x, bias, skip = b.node.input[0], b.input(1), b.input(2)
        b.add(b.add(x, bias), skip, b.node.output[0])


def _skip_sum(b: Builder, bias_index: int) -> str:
    """input + skip (+ bias), written to the input_skip_bias_sum output when that is used."""
    x, skip, bias = b.node.input[0], b.node.input[1], b.input(bias_index)
    keep = b.node.output[3] if b.output_used(3) else None
    if bias:
        return b.add(b.add(x, skip), bias, keep)
    return b.add(x, skip, keep)


class SkipLayerNormToAddLayerNorm(_Contrib):
    """Replace `com.microsoft::SkipLayerNormalization` by `Add` + `LayerNormalization`.

    ## What it does
    `SkipLayerNormalization(x, skip, gamma, beta?, bias?)` becomes
    `s = x + skip (+ bias); LayerNormalization(s, gamma, beta, axis=-1, epsilon)`. The
    `input_skip_bias_sum` output, when used, is `s`. Below opset 17 the layer norm is written with
    ReduceMean/Sub/Mul/Sqrt/Div.

    ## When it applies
    TRT102 on `com.microsoft::SkipLayerNormalization` (BERT-style models after ORT's optimizer); no
    TensorRT release imports it. Skipped when its `mean` or `inv_std_var` output is used (TensorRT's
    LayerNormalization returns only Y).

    ## Example
    `y = com.microsoft.SkipLayerNormalization<epsilon=1e-12>(h, r, g, b)` becomes
    `y = LayerNormalization<axis=-1, epsilon=1e-12>(Add(h, r), g, b)`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "skip-layer-norm-to-add-layer-norm"
    summary = "replace com.microsoft::SkipLayerNormalization by Add + LayerNormalization"
    op_type = "SkipLayerNormalization"

    def replace(self, b: Builder) -> None:
        if b.output_used(1) or b.output_used(2):
            raise Skip("its mean / inv_std_var output is used")
        dtype = b.float_type(*b.node.input)
        s = _skip_sum(b, 4)
        b.layer_norm(s, b.node.input[2], b.input(3), float(b.attr("epsilon", 1e-12)), dtype, b.node.output[0])


class SkipSimplifiedLayerNormToAddRms(_Contrib):
    """Replace `com.microsoft::SkipSimplifiedLayerNormalization` by `Add` + RMS normalization.

    ## What it does
    `SkipSimplifiedLayerNormalization(x, skip, gamma, bias?)` becomes `s = x + skip (+ bias);
    s / Sqrt(ReduceMean(s * s, [-1]) + epsilon) * gamma` (computed in FLOAT, as ONNX Runtime's
    kernel does). The `input_skip_bias_sum` output, when used, is `s`.

    ## When it applies
    TRT102 on `com.microsoft::SkipSimplifiedLayerNormalization` (Llama/T5-style models after ORT's
    optimizer); no TensorRT release imports it. Skipped when its `mean` or `inv_std_var` output is
    used.

    ## Example
    `y = com.microsoft.SkipSimplifiedLayerNormalization<epsilon=1e-6>(h, r, g)` becomes
    `s = Add(h, r); y = Mul(Div(s, Sqrt(Add(ReduceMean(Mul(s, s), [-1]), 1e-6))), g)`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "skip-simplified-layer-norm-to-add-rms"
    summary = "replace com.microsoft::SkipSimplifiedLayerNormalization by Add + RMS-norm reductions"
    op_type = "SkipSimplifiedLayerNormalization"

    def replace(self, b: Builder) -> None:
        if b.output_used(1) or b.output_used(2):
            raise Skip("its mean / inv_std_var output is used")
        dtype = b.float_type(*b.node.input)
        s = _skip_sum(b, 3)
        b.rms_norm(s, b.node.input[2], [-1], float(b.attr("epsilon", 1e-12)), dtype, True, b.node.output[0])


_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


class FusedConvToConvActivation(_Contrib):
    """Replace `com.microsoft::FusedConv` by `Conv` (+ `Add` of Z) + the activation op.

    ## What it does
    `FusedConv(X, W, B?, Z?, activation, activation_params)` becomes
    `activation(Conv(X, W, B) + Z)`, with the activation written as its ONNX op (Relu, Tanh,
    Sigmoid, LeakyRelu, Clip, HardSigmoid) and its parameters as attributes or inputs.

    ## When it applies
    TRT102 on `com.microsoft::FusedConv` (ONNX Runtime's CPU fusion of Conv with an activation);
    no TensorRT release imports it. Skipped for an activation without an ONNX equivalent here.

    ## Example
    `y = com.microsoft.FusedConv<activation="Relu">(x, w, b)` becomes `y = Relu(Conv(x, w, b))`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "fused-conv-to-conv-activation"
    summary = "replace com.microsoft::FusedConv by Conv + activation"
    op_type = "FusedConv"

    def replace(self, b: Builder) -> None:
        dtype = b.float_type(*b.node.input)
        kind = b.attr("activation", b"")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        params = list(b.attr("activation_params", []) or [])
        attrs = {a: b.attr(a) for a in _CONV_ATTRS}
        if isinstance(attrs["auto_pad"], bytes):
            attrs["auto_pad"] = attrs["auto_pad"].decode()
        inputs = [i for i in b.node.input[:3]]
        while inputs and not inputs[-1]:
            inputs.pop()
        y = b.node.output[0]
        z = b.input(3)
        if not kind:
            conv = b.op("Conv", inputs, None if z else y, **attrs)
            if z:
                b.add(conv, z, y)
            return
        conv = b.op("Conv", inputs, **attrs)
        if z:
            conv = b.add(conv, z)
        p = params + [None] * 2
        b.activation(kind, conv, dtype, y, alpha=p[0], beta=p[1])


class FusedGemmToGemmActivation(_Contrib):
    """Replace `com.microsoft::FusedGemm` by `Gemm` + the activation op.

    ## What it does
    `FusedGemm(A, B, C?, alpha, beta, transA, transB, activation, activation_alpha/beta/gamma)`
    becomes `activation(Gemm(A, B, C, alpha, beta, transA, transB))` with the activation written as
    its ONNX op and its parameters as attributes.

    ## When it applies
    TRT102 on `com.microsoft::FusedGemm` (ONNX Runtime's CPU fusion of Gemm with an activation); no
    TensorRT release imports it. Skipped for an activation without an ONNX equivalent here.

    ## Example
    `y = com.microsoft.FusedGemm<activation="LeakyRelu", activation_alpha=0.1>(a, w, c)` becomes
    `y = LeakyRelu<alpha=0.1>(Gemm(a, w, c))`.

    ## Safety
    Safe: the definition of the contrib op.

    ## Resolves
    TRT102
    """

    name = "fused-gemm-to-gemm-activation"
    summary = "replace com.microsoft::FusedGemm by Gemm + activation"
    op_type = "FusedGemm"

    def replace(self, b: Builder) -> None:
        dtype = b.float_type(*b.node.input)
        kind = b.attr("activation", b"")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        attrs = {a: b.attr(a) for a in ("alpha", "beta", "transA", "transB")}
        inputs = [i for i in b.node.input[:3]]
        while inputs and not inputs[-1]:
            inputs.pop()
        y = b.node.output[0]
        if not kind:
            b.op("Gemm", inputs, y, **attrs)
            return
        g = b.op("Gemm", inputs, **attrs)
        b.activation(kind, g, dtype, y, alpha=b.attr("activation_alpha"), beta=b.attr("activation_beta"),
                     gamma=b.attr("activation_gamma"))


class ContribAttentionToMatmulSoftmax(_Contrib):
    """Replace `com.microsoft::Attention` (fused QKV projection and attention) by MatMul, Softmax and reshapes.

    ## What it does
    ONNX Runtime's transformer optimizer fuses a BERT/GPT-2 self-attention block into
    `Attention(input, weights, bias, mask_index, past, attention_bias)`. It becomes the same
    computation in standard ops: `QKV = input @ weights + bias`, split into Q, K, V
    (`qkv_hidden_sizes`, equal thirds by default), each reshaped to `[B, heads, S, head_size]`;
    `scores = Q @ K^T * scale` (`scale` or `1/sqrt(head_size)`), plus `mask_filter_value`
    (default -10000) where the mask hides a key and, with `unidirectional=1`, above the diagonal,
    plus `attention_bias`; `Softmax` over the keys; `@ V`, back to `[B, S, v_hidden]`.

    ## When it applies
    TRT102 on `com.microsoft::Attention`: no TensorRT release has an importer (from 10.14 the
    parser sends it to the different ONNX `Attention` importer). Handles no mask, a 1-D
    `mask_index` (the number of valid keys per batch, right padding) and a 2-D raw mask
    `[B, S]`. Skipped with `past`/`present` (KV cache), other mask formats, rotary embedding,
    packed QKV input without weights, or `unidirectional=1` with a dynamic sequence length.

    ## Example
    `y = com.microsoft.Attention<num_heads=2>(x, w, b)` with `x: float[1,4,16]`, `w: float[16,48]`
    becomes `qkv = Add(MatMul(x, w), b)`, three `Slice`s, `Reshape`/`Transpose` to heads,
    `Softmax(Mul(MatMul(q, k^T), 0.3536))`, `MatMul` with v and the reshape back.

    ## Safety
    Safe: the definition of the contrib op, computed in the input's precision; ONNX Runtime's
    kernel agrees to float rounding.

    ## Resolves
    TRT102
    """

    name = "contrib-attention-to-matmul-softmax"
    summary = "replace com.microsoft::Attention by MatMul + Softmax + reshapes"
    op_type = "Attention"

    def replace(self, b: Builder) -> None:
        x, w, bias = b.node.input[0], b.input(1), b.input(2)
        if not w:
            raise Skip("packed QKV input without weights")
        if b.input(4) or b.output_used(1):
            raise Skip("past/present (KV cache)")
        if b.input(6) or b.attr("do_rotary", 0):
            raise Skip("rotary embedding or a past sequence length")
        dtype = b.float_type(x, w)
        heads = int(b.attr("num_heads"))
        sizes = b.attr("qkv_hidden_sizes")
        wshape = b.shape(w)
        if sizes:
            hq, hk, hv = (int(v) for v in sizes)
        elif wshape and wshape[-1]:
            hq = hk = hv = wshape[-1] // 3
        else:
            raise Skip("the weights' width is unknown (needed to split Q, K and V)")
        if hq != hk or hq % heads or hv % heads:
            raise Skip("Q and K sizes differ or do not divide into the heads")
        hd, vd = hq // heads, hv // heads
        qkv = b.op("MatMul", [x, w])
        if bias:
            qkv = b.add(qkv, bias)
        parts = []
        for start, size, width in ((0, hq, hd), (hq, hk, hd), (hq + hk, hv, vd)):
            part = b.op("Slice", [qkv, b.ints([start], "starts"), b.ints([start + size], "ends"), b.ints([-1], "axes")])
            part = b.op("Reshape", [part, b.ints([0, 0, heads, width], "heads_shape")])
            parts.append(part)
        q = b.op("Transpose", [parts[0]], perm=[0, 2, 1, 3])
        kt = b.op("Transpose", [parts[1]], perm=[0, 2, 3, 1])
        v = b.op("Transpose", [parts[2]], perm=[0, 2, 1, 3])
        scale = b.attr("scale")
        scale = float(scale) if scale else 1.0 / float(np.sqrt(hd))
        scores = b.mul(b.op("MatMul", [q, kt]), b.const(scale, dtype, "scale"))
        mfv = float(b.attr("mask_filter_value", -10000.0))
        mask = b.input(3)
        if mask:
            mshape = b.shape(mask)
            rank = None if mshape is None else len(mshape)
            if rank == 2:
                keep = b.op("Greater", [mask, b.const(0, b.dtype(mask) or TensorProto.INT32, "zero")])
            elif rank == 1:
                xs = b.shape(x)
                if xs is None or len(xs) != 3 or not xs[1]:
                    raise Skip("a 1-D mask_index with a dynamic sequence length")
                ends = b.cast(mask, TensorProto.INT64)
                positions = b.ints(list(range(xs[1])), "positions")
                keep = b.op("Less", [b.unsqueeze(positions, [0]), b.unsqueeze(ends, [1])])
            else:
                raise Skip(f"mask_index of rank {rank}: only a 1-D length or a 2-D raw mask is handled")
            hidden = b.op("Not", [keep])
            add = b.mul(b.cast(hidden, dtype), b.const(mfv, dtype, "mask_filter_value"))
            scores = b.add(scores, b.unsqueeze(add, [1, 2]))
        if int(b.attr("unidirectional", 0)):
            xs = b.shape(x)
            if xs is None or len(xs) != 3 or not xs[1]:
                raise Skip("unidirectional with a dynamic sequence length")
            n = xs[1]
            future = np.triu(np.ones((n, n), dtype=np.float64), k=1) * mfv
            scores = b.add(scores, b.const(future, dtype, "causal_mask"))
        if b.input(5):
            scores = b.add(scores, b.input(5))
        probs = b.op("Softmax", [scores], axis=-1)
        ctx = b.op("Transpose", [b.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        b.op("Reshape", [ctx, b.ints([0, 0, hv], "output_shape")], b.node.output[0])


REWRITES = (
    ContribAttentionToMatmulSoftmax,
    FusedMatmulToMatmul,
    ContribGeluToErf,
    BiasGeluToAddErf,
    FastGeluToTanh,
    QuickGeluToSigmoidMul,
    BiasAddToAdd,
    SkipLayerNormToAddLayerNorm,
    SkipSimplifiedLayerNormToAddRms,
    FusedConvToConvActivation,
    FusedGemmToGemmActivation,
)
