"""Exports base-size, randomly initialised transformers models to ONNX for bench/fix_compare.py.

    /work/venv-torch/bin/python bench/export_models.py [--out bench/out/fix-models]
        [--models bert,gpt2,vit,llama] [--variants torchscript,dynamo,torchscript-opset14]
        [--size base|small] [--token-type-ids] [--dynamic-shapes]

Needs torch and transformers. Nothing is downloaded: every model is built from a config with
random weights (fixed seed), at realistic sizes, so the graphs are the exporters' real patterns
at real depth:

- bert:  bert-base-uncased shape (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522)
- gpt2:  GPT-2 small (12 layers, n_embd 768, 12 heads, vocab 50257)
- vit:   vit-base-patch16-224 (12 layers, hidden 768, 12 heads, patch 16, 224x224)
- llama: a Llama-style decoder, 4 layers, hidden 1024, 16 heads, FFN 2816, vocab 32000.
  num_key_value_heads == num_attention_heads: the TorchScript exporter cannot convert
  grouped-query SDPA (same as fixtures/export_real.py).

--size small keeps each architecture and exporter pattern but shrinks it to 2 layers, hidden 128, 2 heads,
FFN 512 (vocabularies, positions and image size stay as above); bench/corpus.py uses it. --size mid: 4 layers,
hidden 512, 8 heads, FFN 1408 (~100 MB; the `fix --precision fp16` timing in docs/benchmarks-fix.md).
--token-type-ids gives BERT a third input, token_type_ids (as Hugging Face's own BERT exports have), whose
values index the 2-row token-type embedding.
--dynamic-shapes: dynamo exports get torch.export's own `dynamic_shapes` (Dim "batch", Dim "sequence") and
batch-2 example inputs (torch.export specialises a dimension traced at size 1), as a user of the new exporter
writes it, instead of the translated `dynamic_axes` that fails for these models.

Variants (file name MODEL-VARIANT.onnx):

- torchscript:         torch.onnx.export(..., dynamo=False, opset_version=17) - LayerNorm is one op,
                       GELU is decomposed (Erf form; Gelu is opset 20)
- torchscript-opset14: same at opset 14 - LayerNorm decomposed too (ReduceMean/Sub/Pow/Sqrt/Div)
- dynamo:              torch.onnx.export(..., dynamo=True, opset_version=18, optimize=True)

Batch and sequence are dynamic (pixel_values: batch) in every variant; for dynamo the
dynamic_axes are translated by torch. If a dynamic dynamo export fails, the model is exported
with static shapes and that is printed (and recorded in MODEL-VARIANT.json beside the model).
Every model is saved as one file (all are below protobuf's 2 GB limit).

--perturb adds N(0, 0.02) noise to every parameter: transformers initialises biases to 0 and
norm weights to 1, which trained weights never are (tools could delete x + 0 or merge the
identical biases). Use another --out for perturbed models.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

SEQ = 16  # sequence length of the example inputs used for tracing

VARIANTS = {
    "torchscript": dict(dynamo=False, opset=17),
    "torchscript-opset14": dict(dynamo=False, opset=14),
    "dynamo": dict(dynamo=True, opset=18),
}


# Per-size overrides of the architecture (layers, width, heads, FFN); vocabularies, positions and image size
# stay as in the real models, so embedding tables and position limits are the real ones.
SIZES = {
    "base": {},
    "small": dict(layers=2, hidden=128, heads=2, ffn=512),
    # ~100 MB in FP32 (BERT 104 MB, Llama-style 117 MB): the `fix --precision fp16` speed benchmark
    "mid": dict(layers=4, hidden=512, heads=8, ffn=1408),
}


def _model(name: str, size: str = "base", token_type_ids: bool = False):
    import torch
    from transformers import (BertConfig, BertModel, GPT2Config, GPT2Model, LlamaConfig, LlamaModel, ViTConfig,
                              ViTModel)

    sz = SIZES[size]
    layers, hidden, heads, ffn = (sz.get("layers", 12), sz.get("hidden", 768), sz.get("heads", 12),
                                  sz.get("ffn", 3072))
    torch.manual_seed(0)
    if name == "vit":
        cfg = ViTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=ffn, image_size=224, patch_size=16, num_channels=3)
        return ViTModel(cfg, add_pooling_layer=False), (torch.randn(1, 3, 224, 224),), ["pixel_values"]
    if name == "bert":
        cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=ffn, max_position_embeddings=512)
        ids = torch.randint(0, cfg.vocab_size, (1, SEQ))
        mask = torch.ones(1, SEQ, dtype=torch.int64)
        if token_type_ids:
            types = torch.zeros(1, SEQ, dtype=torch.int64)
            types[:, SEQ // 2:] = 1
            return (BertModel(cfg, add_pooling_layer=False), (ids, mask, types),
                    ["input_ids", "attention_mask", "token_type_ids"])
        return BertModel(cfg, add_pooling_layer=False), (ids, mask), ["input_ids", "attention_mask"]
    if name == "gpt2":
        cfg = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=hidden, n_layer=layers, n_head=heads)
        return GPT2Model(cfg), (torch.randint(0, cfg.vocab_size, (1, SEQ)),), ["input_ids"]
    if name == "llama":
        if size == "base":  # the Llama-style decoder has a base size of its own (see above)
            layers, hidden, heads, ffn = 4, 1024, 16, 2816
        cfg = LlamaConfig(vocab_size=32000, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                          num_key_value_heads=heads, intermediate_size=ffn, max_position_embeddings=2048)
        return LlamaModel(cfg), (torch.randint(0, cfg.vocab_size, (1, SEQ)),), ["input_ids"]
    raise ValueError(name)


def _wrap(model):
    """One plain tensor output (last_hidden_state), no KV cache."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *args):
            if "use_cache" in self.m.forward.__code__.co_varnames:
                return self.m(*args, use_cache=False).last_hidden_state
            return self.m(*args).last_hidden_state

    return Wrapped(model).eval()


def _perturb(model) -> None:
    """Make the weights look trained: transformers initialises biases to 0 and norm weights to 1,
    which lets tools delete `x + 0` / `x * 1` and merge identical bias tensors - savings that trained
    weights never allow. Adds N(0, 0.02) noise to every parameter (fixed seed)."""
    import torch

    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


def export(name: str, variant: str, out: Path, perturb: bool = False, size: str = "base",
           token_type_ids: bool = False, dynamic_shapes: bool = False) -> dict:
    import torch

    spec = VARIANTS[variant]
    model, inputs, input_names = _model(name, size, token_type_ids)
    if perturb:
        _perturb(model)
    wrapped = _wrap(model)
    path = out / f"{name}-{variant}.onnx"
    dyn_axes = {n: ({0: "batch"} if n == "pixel_values" else {0: "batch", 1: "sequence"}) for n in input_names}
    kw = dict(dynamic_axes=dyn_axes)
    if spec["dynamo"] and dynamic_shapes:
        inputs = tuple(torch.cat([x, x]) for x in inputs)
        dims = {"batch": torch.export.Dim("batch"),
                "sequence": torch.export.Dim("sequence", max=512 if name == "bert" else 1024)}
        kw = dict(dynamic_shapes=(tuple({ax: dims[d] for ax, d in dyn_axes[n].items()} for n in input_names),))
    info = dict(model=name, variant=variant, path=str(path), opset=spec["opset"], dynamo=spec["dynamo"],
                dynamic=True, perturbed=perturb, size=size, token_type_ids=token_type_ids,
                dynamic_shapes=bool(spec["dynamo"] and dynamic_shapes), torch=torch.__version__)
    t0 = time.perf_counter()
    with torch.no_grad():
        if not spec["dynamo"]:
            torch.onnx.export(wrapped, inputs, path, input_names=input_names, output_names=["last_hidden_state"],
                              dynamic_axes=dyn_axes, opset_version=spec["opset"], dynamo=False)
        else:
            try:
                prog = torch.onnx.export(wrapped, inputs, input_names=input_names,
                                         output_names=["last_hidden_state"], **kw,
                                         opset_version=spec["opset"], dynamo=True, optimize=True)
            except Exception as e:  # noqa: BLE001 - fall back to static shapes, and say so
                print(f"  dynamic dynamo export of {name} failed ({type(e).__name__}); exporting static shapes")
                info["dynamic"] = False
                info["dynamic_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                prog = torch.onnx.export(wrapped, inputs, input_names=input_names,
                                         output_names=["last_hidden_state"], opset_version=spec["opset"],
                                         dynamo=True, optimize=True)
            prog.save(str(path), external_data=False)
    info["export_s"] = round(time.perf_counter() - t0, 1)
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    info["nodes"] = len(m.graph.node)
    info["bytes"] = path.stat().st_size
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out" / "fix-models")
    ap.add_argument("--models", default="bert,gpt2,vit,llama")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--size", choices=sorted(SIZES), default="base",
                    help="base: the real depth and width; small: 2 layers, hidden 128 (same patterns)")
    ap.add_argument("--token-type-ids", action="store_true", help="BERT: also take token_type_ids as an input")
    ap.add_argument("--dynamic-shapes", action="store_true",
                    help="dynamo: torch.export dynamic_shapes with batch-2 examples instead of dynamic_axes")
    ap.add_argument("--force", action="store_true", help="re-export models that already exist")
    ap.add_argument("--perturb", action="store_true",
                    help="add N(0, 0.02) noise to every parameter (no zero biases / unit norm weights, as in trained models)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    failures = 0
    for name in args.models.split(","):
        for variant in args.variants.split(","):
            path = args.out / f"{name}-{variant}.onnx"
            if path.exists() and path.with_suffix(".json").exists() and not args.force:
                print(f"exists {path}")
                continue
            try:
                info = export(name, variant, args.out, args.perturb, args.size, args.token_type_ids,
                              args.dynamic_shapes)
                print(f"wrote {path}: {info['nodes']} nodes, {info['bytes'] / 1e6:.0f} MB, "
                      f"{info['export_s']} s{'' if info['dynamic'] else ' (static shapes)'}", flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on with the other models
                failures += 1
                print(f"FAILED {name}/{variant}: {type(e).__name__}: {str(e).splitlines()[0][:300]}",
                      file=sys.stderr, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
