"""The naive baseline: the seed articles' per-frame pipeline, written out as they write it.

    python bench/naive.py video IN.mp4 OUT.mp4 --blur 45
    python bench/naive.py video IN.mp4 OUT.mp4 --bg BACKGROUND.jpg
    python bench/naive.py video IN.mp4 OUT.mp4 --green        # stand-in for --transparent (see below)
    python bench/naive.py images IN_DIR OUT_DIR --transparent # PNG with alpha
    python bench/naive.py images IN_DIR OUT_DIR --bg BACKGROUND.jpg

Per frame: read with OpenCV (``VideoCapture`` / ``imread``), segment the full-resolution frame with the
current MediaPipe Tasks ``ImageSegmenter`` (selfie model, IMAGE running mode, confidence mask out),
``np.stack((mask,) * 3, axis=-1) > 0.5``, ``np.where`` against a full-resolution
``cv2.GaussianBlur(frame, (45, 45), 0)`` (or the background resized to the frame), write with
``cv2.VideoWriter`` ``mp4v`` (no audio) or ``cv2.imwrite`` (its defaults: JPEG quality 95, PNG level 1).
MP4V cannot hold alpha and the articles do not make transparent video; for the ``--transparent`` row the
baseline puts the subject on a green screen, the articles' way to a keyable video. For images,
``--transparent`` sets the alpha channel to the hard mask and writes a PNG. The model is loaded once per
run, as a script looping over a folder would. The whole process is timed, imports included.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np
from mediapipe.tasks.python import BaseOptions, vision


def model_path() -> str:
    folder = os.environ.get("BGREMOVE_MODEL_DIR")
    candidates = [Path(folder) / "selfie_segmenter.tflite"] if folder else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "models" / "selfie_segmenter.tflite")
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise SystemExit("selfie_segmenter.tflite not found: set BGREMOVE_MODEL_DIR")


def segmenter() -> vision.ImageSegmenter:
    options = vision.ImageSegmenterOptions(
        base_options=BaseOptions(model_asset_path=model_path()),
        running_mode=vision.RunningMode.IMAGE,
        output_confidence_masks=True,
        output_category_mask=False,
    )
    return vision.ImageSegmenter.create_from_options(options)


def person_mask(model: vision.ImageSegmenter, frame_bgr: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    result = model.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
    mask = result.confidence_masks[0]
    # mediapipe 1.2 gives H x W x 1 where the articles' versions gave H x W
    return mask.numpy_view().reshape(mask.height, mask.width)


def video(arguments: argparse.Namespace) -> None:
    capture = cv2.VideoCapture(arguments.input)
    fps = capture.get(cv2.CAP_PROP_FPS)
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(arguments.output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    background = None
    if arguments.bg:
        background = cv2.resize(cv2.imread(arguments.bg), (width, height))
    elif arguments.green:
        background = np.zeros((height, width, 3), dtype=np.uint8)
        background[:] = (0, 255, 0)
    frames = 0
    with segmenter() as model:
        while capture.isOpened():
            ok, frame = capture.read()
            if not ok:
                break
            mask = person_mask(model, frame)
            condition = np.stack((mask,) * 3, axis=-1) > 0.5
            behind = background if background is not None else cv2.GaussianBlur(frame, (45, 45), 0)
            output = np.where(condition, frame, behind)
            writer.write(output)
            frames += 1
    capture.release()
    writer.release()
    print(f"naive: {frames} frames", file=sys.stderr)


def images(arguments: argparse.Namespace) -> None:
    output_dir = Path(arguments.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    background_source = cv2.imread(arguments.bg) if arguments.bg else None
    count = 0
    with segmenter() as model:
        for path in sorted(Path(arguments.input).glob("*.jpg")):
            frame = cv2.imread(str(path))
            mask = person_mask(model, frame)
            if arguments.transparent:
                bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
                bgra[..., 3] = np.where(mask > 0.5, 255, 0)
                cv2.imwrite(str(output_dir / f"{path.stem}_nobg.png"), bgra)
            else:
                assert background_source is not None
                background = cv2.resize(background_source, (frame.shape[1], frame.shape[0]))
                condition = np.stack((mask,) * 3, axis=-1) > 0.5
                cv2.imwrite(str(output_dir / f"{path.stem}_nobg.jpg"), np.where(condition, frame, background))
            count += 1
    print(f"naive: {count} images", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=["video", "images"])
    parser.add_argument("input")
    parser.add_argument("output")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--blur", type=int)
    group.add_argument("--bg")
    group.add_argument("--green", action="store_true")
    group.add_argument("--transparent", action="store_true")
    arguments = parser.parse_args()
    if arguments.blur not in (None, 45):
        parser.error("the articles' code blurs with a 45 x 45 kernel only")
    video(arguments) if arguments.kind == "video" else images(arguments)


if __name__ == "__main__":
    main()
