"""Measure bgremove's mattes against the labelled sets in ../shared/data and print markdown tables.

    python bench/eval.py                                  # every set, every variant
    python bench/eval.py --sets web,fullbody --limit 20   # a quick look
    python bench/eval.py --sets hair --variants raw,default

Sets (folders under the data folder, ``$BGREMOVE_DATA_DIR`` or ../shared/data):

    portrait     portrait_shen2016   close-up portraits, selfie model
    web          person_seg_vikram   web photos of people at every scale, selfie model
    fullbody     fullbody_ccp        full-body street photos (masks_person), selfie model
    multiperson  multiperson_cihp    crowded scenes (5 photos), selfie model
    hair         fullbody_ccp        the same photos' masks_hair, hair model
    davis        video_davis2016     the person clip (dance-twirl) as a video, smoothing radius 0-3
    composite    portrait_shen2016   colour at the edge when the background is replaced, blurred or
                                     desaturated (portraits pasted on a known background, see below)

Metrics. The matte is cut at 0.5 for IoU and boundary F. *IoU p10*: the 10th percentile over the
images (how bad the bad cases are). *Boundary F*: F-measure of the outline pixels of the cut matte
against the ground truth's, a pixel counting as matched when the other outline passes within 3 pixels
of it (a fixed 3 px at the image's own resolution, not a share of the diagonal: on these 600x800
photos 1% of the diagonal would be 10 px and hide the edge work). *ms/image*: wall time of
segmentation and refinement (``Pipeline.probability``; no file reading, no compositing) per image, on
whatever machine runs this; *CPU ms/image* the CPU time of all the process's threads for the same work,
which a busy machine disturbs less (it adds up every thread, so it can exceed the wall time).
``--scale 4`` enlarges the photos and masks four times (and the boundary tolerance to 12 px): phone-size
photos, which take the path of photos above 2048 px; the labelled photos themselves are all smaller.

DAVIS: the H.264 clip through a video session as ``bgremove clip.mp4`` runs it (times include decoding
and smoothing). *flicker* is the mean absolute change of the soft matte between consecutive frames (0-1
scale, over all pixels), shown next to the ground truth's own change, which is real motion; *jitter*
the mean absolute second difference; *temporal error* the change the truth's motion does not explain.

Composite: each portrait F is pasted with its ground-truth mask (softened by a 1 px Gaussian: alpha)
on a photo background A, I = alpha F + (1 - alpha) A; bgremove then processes I in each mode, and the
result is compared with what the mode should give with the true matte and colours: alpha F + (1 - alpha)
X with X the new background (``--bg``), the blurred A (``--blur``; blurred with the same kernel) or the
gray A (``--desaturate``). The error is the mean absolute difference (0-255) over pixels within 8 px of
the outline, where halos and bleeding live.

Variants (refinement steps of ``RefineConfig``, each toggled on its own so that the table shows what
each one is worth): raw (the model's own mask: one pass, bilinear to frame size), flip, zoom,
zoom+flip, edges, default (what bgremove does with no option), quality (``--quality``). Hair: raw, flip,
head crop (no flip), default. DAVIS: raw and default.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgremove.compose import gaussian_sigma, make_compositor  # noqa: E402
from bgremove.config import CompositeConfig, CompositeMode, RefineConfig, SegmenterConfig  # noqa: E402
from bgremove.media import read_image  # noqa: E402
from bgremove.pipeline import Pipeline  # noqa: E402
from bgremove.types import Frame  # noqa: E402

DATA_DIR = Path(os.environ.get("BGREMOVE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
TOLERANCE_PX = 3
BAND_PX = 8

QUALITY = RefineConfig.best()
VARIANTS: dict[str, RefineConfig] = {
    "raw": RefineConfig.off(),
    "flip": dataclasses.replace(RefineConfig.off(), flip=True),
    "zoom": dataclasses.replace(RefineConfig.off(), zoom=True),
    "zoom+flip": dataclasses.replace(RefineConfig.off(), zoom=True, flip=True),
    "edges": dataclasses.replace(RefineConfig.off(), edges=True),
    "default": RefineConfig(),
    "quality": QUALITY,
}
HAIR_VARIANTS = {
    "raw": RefineConfig.off(),
    "flip": dataclasses.replace(RefineConfig.off(), flip=True),
    "head crop": dataclasses.replace(RefineConfig.off(), zoom=True),
    "default": RefineConfig(),
}


@dataclass(frozen=True)
class LabelledSet:
    name: str
    folder: str
    masks: str
    model: str
    about: str


SETS = {
    "portrait": LabelledSet("portrait", "portrait_shen2016", "masks", "selfie", "close-up portraits"),
    "web": LabelledSet("web", "person_seg_vikram", "masks", "selfie", "web photos"),
    "fullbody": LabelledSet("fullbody", "fullbody_ccp", "masks_person", "selfie", "full body"),
    "multiperson": LabelledSet("multiperson", "multiperson_cihp", "masks_person", "selfie", "2-8 people"),
    "hair": LabelledSet("hair", "fullbody_ccp", "masks_hair", "hair", "hair on full-body photos"),
}
DAVIS_CLIP = "dance-twirl"
ALL_SETS = (*SETS, "davis", "composite")


# --- metrics ------------------------------------------------------------------------------------------

def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a neighbour outside it (the frame's border does not count as outside)."""
    solid = mask.astype(np.uint8)
    eroded = cv2.erode(solid, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return (solid - eroded) > 0


def boundary_f(predicted: np.ndarray, truth: np.ndarray, tolerance: float = TOLERANCE_PX) -> float:
    """F-measure of outline pixels matched within ``tolerance`` pixels (1.0 when both are empty)."""
    predicted_outline, truth_outline = outline(predicted), outline(truth)
    if not predicted_outline.any() or not truth_outline.any():
        return float(predicted_outline.any() == truth_outline.any())
    to_truth = cv2.distanceTransform((~truth_outline).astype(np.uint8), cv2.DIST_L2, 5)
    to_predicted = cv2.distanceTransform((~predicted_outline).astype(np.uint8), cv2.DIST_L2, 5)
    precision = float((to_truth[predicted_outline] <= tolerance).mean())
    recall = float((to_predicted[truth_outline] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class Scores:
    ious: list[float] = dataclasses.field(default_factory=list)
    boundaries: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    cpu_seconds: list[float] = dataclasses.field(default_factory=list)

    def add(self, probability: np.ndarray, truth: np.ndarray, seconds: float, cpu_seconds: float,
            tolerance: float = TOLERANCE_PX) -> None:
        predicted = probability >= 0.5
        self.ious.append(iou(predicted, truth))
        self.boundaries.append(boundary_f(predicted, truth, tolerance))
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu_seconds)

    def row(self) -> list[str]:
        return [
            str(len(self.ious)),
            f"{np.mean(self.ious):.3f}",
            f"{np.percentile(self.ious, 10):.3f}",
            f"{np.mean(self.boundaries):.3f}",
            f"{1000 * np.mean(self.seconds):.0f}",
            f"{1000 * np.mean(self.cpu_seconds):.0f}",
        ]


# --- data ---------------------------------------------------------------------------------------------

def read_mask(path: Path, width: int, height: int) -> np.ndarray:
    with Image.open(path) as image:
        mask = np.asarray(image.convert("L")) > 127
    if mask.shape != (height, width):  # a few published masks are a pixel off their photo
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def labelled_pairs(labelled: LabelledSet, limit: int | None, scale: float = 1.0) -> list[tuple[str, Frame, np.ndarray]]:
    """The set's photos and masks; ``scale`` above 1 enlarges both (bicubic photo, the mask cut from its
    bilinear enlargement) to try the path large photos take."""
    folder = DATA_DIR / labelled.folder
    if not folder.is_dir():
        raise SystemExit(f"eval: {folder} is absent (set BGREMOVE_DATA_DIR to the shared data folder)")
    pairs = []
    for image_path in sorted((folder / "images").iterdir())[:limit]:
        frame, _ = read_image(image_path)
        truth = read_mask(folder / labelled.masks / f"{image_path.stem}.png", frame.width, frame.height)
        if scale != 1.0:
            size = (round(frame.width * scale), round(frame.height * scale))
            frame = Frame(rgb=np.asarray(cv2.resize(frame.rgb, size, interpolation=cv2.INTER_CUBIC), dtype=np.uint8))
            truth = cv2.resize(truth.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
        pairs.append((image_path.stem, frame, truth))
    return pairs


def timed(pipeline: Pipeline, frame: Frame) -> tuple[np.ndarray, float, float]:
    """The probability, the wall time it took and the CPU time of all the process's threads."""
    started, cpu_started = time.perf_counter(), time.process_time()
    probability = pipeline.probability(frame)
    return probability, time.perf_counter() - started, time.process_time() - cpu_started


def open_pipeline(model: str, refine: RefineConfig, warm_up: Frame) -> Pipeline:
    pipeline = Pipeline(SegmenterConfig(model), refine=refine).open()
    pipeline.probability(warm_up)  # the first inference sets up the runtime: not part of the timing
    return pipeline


# --- evaluations --------------------------------------------------------------------------------------

Row = list[str]
HEADER = ["set", "model", "variant", "images", "mean IoU", "IoU p10", "boundary F", "ms/image", "CPU ms/image"]


def evaluate_set(labelled: LabelledSet, variants: dict[str, RefineConfig], limit: int | None,
                 scale: float = 1.0) -> Iterator[Row]:
    pairs = labelled_pairs(labelled, limit, scale)
    for variant, refine in variants.items():
        scores = Scores()
        with open_pipeline(labelled.model, refine, pairs[0][1]) as pipeline:
            for _, frame, truth in pairs:
                probability, seconds, cpu_seconds = timed(pipeline, frame)
                scores.add(probability, truth, seconds, cpu_seconds, TOLERANCE_PX * scale)
        yield [labelled.name, labelled.model, variant, *scores.row()]


def _flicker_and_jitter(mattes: list[np.ndarray]) -> tuple[float, float]:
    """Mean |a[t] - a[t-1]| and mean |a[t] - (a[t-1] + a[t+1]) / 2| over all pixels and frames."""
    changes = [float(np.abs(after - before).mean()) for before, after in zip(mattes, mattes[1:], strict=False)]
    jitters = [
        float(np.abs(middle - (before + after) / 2).mean())
        for before, middle, after in zip(mattes, mattes[1:], mattes[2:], strict=False)
    ]
    return float(np.mean(changes)), float(np.mean(jitters))


def _temporal_error(mattes: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Mean |(a[t] - a[t-1]) - (truth[t] - truth[t-1])|: change that the subject's own motion does not
    explain (the mean-absolute form of the dtSSD of video matting benchmarks)."""
    errors = [matte - truth.astype(np.float32) for matte, truth in zip(mattes, truths, strict=False)]
    return float(np.mean([np.abs(after - before).mean() for before, after in zip(errors, errors[1:], strict=False)]))


DAVIS_SMOOTHING = (0, 1, 2, 3)


def evaluate_davis(variants: dict[str, RefineConfig], limit: int | None) -> Iterator[Row]:
    """The person clip as bgremove processes a video (the H.264 file, a VideoSession with its VIDEO-mode
    segmenter and temporal smoothing), per variant and smoothing radius."""
    from bgremove.config import MaskConfig
    from bgremove.video import VideoReader

    folder = DATA_DIR / "video_davis2016"
    clip = folder / "videos" / f"{DAVIS_CLIP}.mp4"
    if not clip.is_file():
        raise SystemExit(f"eval: {clip} is absent (set BGREMOVE_DATA_DIR to the shared data folder)")
    mask_paths = sorted((folder / DAVIS_CLIP / "masks").glob("*.png"))[:limit]
    truths = [np.asarray(Image.open(path).convert("L")) > 127 for path in mask_paths]
    flicker, jitter = _flicker_and_jitter([truth.astype(np.float32) for truth in truths])
    yield [f"davis {DAVIS_CLIP}", "-", "ground truth", "-", str(len(truths)), "1", "1", "1", "-", "-",
           f"{flicker:.4f}", f"{jitter:.4f}", "0"]
    for variant, refine in variants.items():
        for smooth in DAVIS_SMOOTHING:
            scores = Scores()
            mattes: list[np.ndarray] = []
            pipeline = Pipeline(SegmenterConfig("selfie"), MaskConfig(smooth=smooth), refine=refine)
            with pipeline, VideoReader(clip) as reader, pipeline.video_session() as session:
                frames = itertools.takewhile(lambda frame: frame.index < len(truths), reader.frames())
                started, cpu_started = time.perf_counter(), time.process_time()
                for frame, alpha in session.mattes(frames):
                    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
                    scores.add(alpha, truths[frame.index], seconds, cpu_seconds)
                    mattes.append(alpha)
                    started, cpu_started = time.perf_counter(), time.process_time()
            flicker, jitter = _flicker_and_jitter(mattes)
            drift = _temporal_error(mattes, truths)
            yield [f"davis {DAVIS_CLIP}", "selfie", variant, str(smooth), *scores.row(),
                   f"{flicker:.4f}", f"{jitter:.4f}", f"{drift:.4f}"]


def _backdrop(name: str, width: int, height: int) -> np.ndarray:
    from bgremove.compose import fit_background
    from bgremove.config import BgFit

    frame, _ = read_image(DATA_DIR / "backgrounds" / name)
    return fit_background(frame.rgb, width, height, BgFit.COVER)


MATTE = "bgremove"


def evaluate_composite(limit: int | None, scale: float = 1.0) -> Iterator[Row]:
    """Edge colour error of each compositing mode with and without colour decontamination, with the
    matte bgremove makes and with the true one (which shows the colour step alone). ``scale`` enlarges
    the portraits as for the other sets (``--scale 4``: the colour step's path for phone-size photos)."""
    pairs = labelled_pairs(SETS["portrait"], limit, scale)
    blur = 45
    sigma = gaussian_sigma(blur)
    errors: dict[tuple[str, bool, str], list[float]] = {}
    seconds: dict[tuple[str, bool], list[float]] = {}
    with Pipeline(SegmenterConfig("selfie")).open() as pipeline:
        for _, subject, truth in pairs:
            height, width = truth.shape
            true_alpha = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 1.0 * scale)
            weight = true_alpha[..., None]
            plate = _backdrop("pixabay_porch-691330_1280.jpg", width, height).astype(np.float32)
            photo = Frame(np.clip(weight * subject.rgb + (1 - weight) * plate + 0.5, 0, 255).astype(np.uint8))
            new = _backdrop("anil_sky.jpg", width, height)
            gray_plate = cv2.cvtColor(cv2.cvtColor(plate.astype(np.uint8), cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            targets = {
                "bg image": (new.astype(np.float32), CompositeConfig(CompositeMode.IMAGE)),
                "blur": (cv2.GaussianBlur(plate, (0, 0), sigma), CompositeConfig(CompositeMode.BLUR, blur=blur)),
                "desaturate": (gray_plate.astype(np.float32), CompositeConfig(CompositeMode.DESATURATE)),
            }
            band_px = round(BAND_PX * scale)  # the same band of the subject however large the photo
            band = cv2.dilate(outline(truth).astype(np.uint8), np.ones((2 * band_px + 1,) * 2, np.uint8)) > 0
            mattes = {MATTE: pipeline.alpha(photo), "true": true_alpha}
            for mode, (target_background, config) in targets.items():
                expected = weight * subject.rgb + (1 - weight) * target_background
                for clean in (False, True):
                    compositor = make_compositor(dataclasses.replace(config, decontaminate=clean), new)
                    for matte_name, matte in mattes.items():
                        started = time.perf_counter()
                        result = compositor(photo, matte)
                        if matte_name == MATTE:
                            seconds.setdefault((mode, clean), []).append(time.perf_counter() - started)
                        error = np.abs(result.astype(np.float32) - expected).mean(axis=2)[band].mean()
                        errors.setdefault((mode, clean, matte_name), []).append(float(error))
    for (mode, clean), times in seconds.items():
        yield [
            mode, "on" if clean else "off", str(len(times)),
            f"{np.mean(errors[(mode, clean, MATTE)]):.2f}", f"{np.mean(errors[(mode, clean, 'true')]):.2f}",
            f"{1000 * np.mean(times):.0f}",
        ]


def table(header: list[str], rows: list[Row]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated: {', '.join(ALL_SETS)}")
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated: {', '.join(VARIANTS)} (hair: {', '.join(HAIR_VARIANTS)})")
    parser.add_argument("--models", default=None,
                        help="evaluate the person sets with these models instead of selfie, e.g. selfie,deeplab")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each set (N frames on DAVIS)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="enlarge the labelled photos and masks N times (boundary tolerance too), e.g. 4 "
                        "for phone-size photos: the path photos above 2048 px take")
    arguments = parser.parse_args(argv)
    wanted = [name.strip() for name in arguments.sets.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in ALL_SETS]
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}; known: {', '.join(ALL_SETS)}")

    def pick(available: dict[str, RefineConfig]) -> dict[str, RefineConfig]:
        if arguments.variants is None:
            return available
        names = [name.strip() for name in arguments.variants.split(",")]
        return {name: available[name] for name in names if name in available}

    rows: list[Row] = []
    for name in wanted:
        if name not in SETS:
            continue
        labelled = SETS[name]
        models = [labelled.model]
        if arguments.models and labelled.model == "selfie":
            models = [model.strip() for model in arguments.models.split(",")]
        for model in models:
            variants = HAIR_VARIANTS if name == "hair" else VARIANTS
            for row in evaluate_set(dataclasses.replace(labelled, model=model), pick(variants), arguments.limit,
                                    arguments.scale):
                rows.append(row)
                print("  " + " | ".join(row), file=sys.stderr, flush=True)
    if rows:
        print(table(HEADER, rows) + "\n", flush=True)
    if "davis" in wanted:
        davis_rows = []
        davis_variants = pick({"raw": VARIANTS["raw"], "default": VARIANTS["default"]})
        for row in evaluate_davis(davis_variants, arguments.limit):
            davis_rows.append(row)
            print("  " + " | ".join(row), file=sys.stderr, flush=True)
        header = [*HEADER[:3], "smooth", "frames", *HEADER[4:], "flicker", "jitter", "temporal error"]
        print(table(header, davis_rows) + "\n", flush=True)
    if "composite" in wanted:
        composite_rows = list(evaluate_composite(arguments.limit, arguments.scale))
        header = ["mode", "decontaminate", "images", "edge error, bgremove's matte", "edge error, true matte",
                  "ms/image (compositing)"]
        print(table(header, composite_rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
