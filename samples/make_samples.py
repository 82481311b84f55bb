"""Make the before/after pictures README shows, by running the real ``bgremove`` command.

Inputs are scikit-image's public-domain photos (NASA's astronaut portrait and Hubble deep field,
the cat "chelsea"), scaled down so the pictures stay small. Run from the project root:

    BGREMOVE_MODEL_DIR=../shared/models python samples/make_samples.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

SAMPLES = Path(__file__).resolve().parent
SIZE = 320

# (output name, bgremove arguments after the input; "{stars}" is the starfield background)
EXAMPLES = [
    ("astronaut_transparent.png", "astronaut.jpg", ["--transparent"]),
    ("astronaut_stars.jpg", "astronaut.jpg", ["--bg", "{stars}"]),
    ("astronaut_green.jpg", "astronaut.jpg", ["--bg-color", "#00b140"]),
    ("astronaut_blur.jpg", "astronaut.jpg", ["--blur", "45"]),
    ("astronaut_desaturate.jpg", "astronaut.jpg", ["--desaturate"]),
    ("astronaut_mask.png", "astronaut.jpg", ["--mask-only"]),
    ("astronaut_hair.png", "astronaut.jpg", ["-m", "hair", "--mask-only"]),
    ("chelsea_cat.png", "chelsea.jpg", ["-m", "deeplab", "--keep", "cat", "--transparent"]),
]


def _shrink(pixels: np.ndarray) -> Image.Image:
    image = Image.fromarray(pixels)
    image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
    return image


def main() -> None:
    with tempfile.TemporaryDirectory() as work_name:
        work = Path(work_name)
        inputs = {"astronaut.jpg": data.astronaut(), "chelsea.jpg": data.chelsea()}
        for name, pixels in inputs.items():
            Image.fromarray(pixels).save(work / name, quality=95)
            _shrink(pixels).save(SAMPLES / name, quality=85)
        stars = work / "starfield.png"
        Image.fromarray(data.hubble_deep_field()).save(stars)
        _shrink(data.hubble_deep_field()).save(SAMPLES / "starfield.jpg", quality=85)
        for output_name, input_name, arguments in EXAMPLES:
            target = work / "out" / output_name
            suffix = "_" + Path(output_name).stem.split("_", 1)[1]
            command = [sys.executable, "-m", "bgremove", str(work / input_name), "-o", str(work / "out"),
                       "--suffix", suffix, "--overwrite", "-q"]
            command += [argument.replace("{stars}", str(stars)) for argument in arguments]
            subprocess.run(command, check=True)
            produced = next((work / "out").glob(Path(input_name).stem + suffix + ".*"))
            with Image.open(produced) as image:
                image.thumbnail((SIZE, SIZE), Image.Resampling.LANCZOS)
                if image.mode == "RGBA":  # fully transparent pixels (0, 0, 0, 0), as bgremove writes them
                    pixels = np.array(image)
                    pixels[pixels[..., 3] == 0] = 0
                    image = Image.fromarray(pixels)
                options = {"quality": 85} if target.suffix == ".jpg" else {"optimize": True}
                image.save(SAMPLES / output_name, **options)
            print(f"{output_name}: bgremove {input_name} {' '.join(arguments)}")


if __name__ == "__main__":
    main()
