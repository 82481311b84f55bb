"""How much faster a folder of real photos goes with -j 2 (or more) than with -j 1.

    python bench/parallel.py                      # 40 portraits at 2x (1200x1600), -j 1 vs -j 2, median of 3
    python bench/parallel.py --scale 1 --photos 40 --jobs 1 2 --repeats 3 -- --mask-only
    python bench/parallel.py --ray 2              # and --engine ray with 2 actors (pip install 'bgremove[ray]')

Each run is the whole ``bgremove`` command as a new process (start-up, model loading in every worker,
planning and writing included) on a fresh output folder; runs of the different job counts alternate so
that a change in the machine's load hits them alike. The photos are copied (and upscaled with
``--scale``, Lanczos) from the shared data into a temporary folder first. Each run also prints the
cores bgremove kept busy and those that other processes took meanwhile (from /proc/stat); on a shared
machine, a round in which other work took more than ``--max-other`` cores is discarded and run again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("BGREMOVE_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")


def make_photos(folder: Path, count: int, scale: float) -> list[Path]:
    from PIL import Image

    sources = sorted((DATA / "portrait_shen2016" / "images").glob("*.jpg"))
    sources += sorted((DATA / "person_seg_vikram" / "images").glob("*.jpg"))
    if len(sources) < count:
        sys.exit(f"need {count} photos, found {len(sources)} under {DATA}")
    made = []
    for source in sources[:count]:
        target = folder / source.name
        if scale == 1:
            shutil.copy(source, target)
        else:
            with Image.open(source) as image:
                size = (round(image.width * scale), round(image.height * scale))
                image.convert("RGB").resize(size, Image.Resampling.LANCZOS).save(target, quality=92)
        made.append(target)
    return made


def run(folder: Path, arguments: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of bgremove and its workers, cores busy with other work meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="bgremove-out-") as out:
        busy_before, ours_before = _busy_seconds(), _children_cpu()
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "-m", "bgremove", str(folder), "-o", out, "-q", *arguments],
                                   capture_output=True, text=True)
        seconds = time.perf_counter() - started
        ours = _children_cpu() - ours_before
        others = max(0.0, (_busy_seconds() - busy_before - ours) / seconds)
        label = " ".join(arguments)
        if completed.returncode != 0:
            sys.exit(f"bgremove {label} failed ({completed.returncode}): {completed.stderr.strip()}")
        if sum(1 for _ in Path(out).rglob("*_nobg.*")) != len(list(folder.iterdir())):
            sys.exit(f"bgremove {label} did not write every output")
    return seconds, ours, others


def _wait_for_quiet(max_other: float, patience: float) -> None:
    """Wait (up to ``patience`` seconds) for 3 s in which other processes take at most ``max_other`` cores."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        before = _busy_seconds()
        time.sleep(3)
        if (_busy_seconds() - before) / 3 <= max_other:
            return


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes), from /proc/stat."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--scale", type=float, default=2.0, help="upscale factor of the copies (1: as they are)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3, help="rounds kept (a round runs every --jobs once)")
    parser.add_argument("--max-other", type=float, default=0.15,
                        help="discard a round in which other processes took more cores than this on average")
    parser.add_argument("--attempts", type=int, default=5, help="give up after repeats x this many rounds")
    parser.add_argument("--wait", type=float, default=300,
                        help="before each round, wait up to this many seconds for the machine to be quiet")
    parser.add_argument("--ray", type=int, default=0, metavar="ACTORS",
                        help="also run --engine ray with this many actors (a local Ray, started by each run)")
    parser.add_argument("extra", nargs="*", help="more bgremove options, after --")
    options = parser.parse_args()
    setups = {f"-j {jobs}": ["-j", str(jobs)] for jobs in options.jobs}
    if options.ray:
        setups[f"ray -j {options.ray}"] = ["--engine", "ray", "-j", str(options.ray)]
    print(f"{os.cpu_count()} CPUs; {options.photos} photos at {options.scale:g}x; bgremove options: "
          f"{' '.join(options.extra) or '(defaults: transparent PNG)'}")
    with tempfile.TemporaryDirectory(prefix="bgremove-photos-") as temporary:
        folder = Path(temporary)
        photos = make_photos(folder, options.photos, options.scale)
        megapixels = sum(_megapixels(path) for path in photos)
        print(f"{len(photos)} photos, {megapixels:.1f} megapixels in all")
        times: dict[str, list[float]] = {label: [] for label in setups}
        attempts = 0
        while len(times[next(iter(setups))]) < options.repeats:
            attempts += 1
            if attempts > options.repeats * options.attempts:
                sys.exit(f"the machine was never quiet enough (--max-other {options.max_other:g}) for a whole round")
            _wait_for_quiet(options.max_other, options.wait)
            round_times: dict[str, float] = {}
            for label, arguments in setups.items():
                seconds, cpu, others = run(folder, [*arguments, *options.extra])
                round_times[label] = seconds
                if label.startswith("ray"):
                    # Ray's workers are not our children when they end (ray.shutdown kills their parent):
                    # their CPU shows up as "other", so this run cannot tell others' load apart.
                    print(f"  round {attempts}: {label:>9}: {seconds:6.2f} s, {options.photos / seconds:5.2f} "
                          "photos/s", flush=True)
                    continue
                print(f"  round {attempts}: {label:>9}: {seconds:6.2f} s, {options.photos / seconds:5.2f} photos/s, "
                      f"bgremove used {cpu / seconds:4.2f} cores, other work {others:4.2f} cores", flush=True)
                if others > options.max_other:
                    print(f"  round {attempts} discarded: other processes took {others:.2f} cores", flush=True)
                    break
            else:
                for label, seconds in round_times.items():
                    times[label].append(seconds)
    first = next(iter(setups))
    base = statistics.median(times[first])
    for label in setups:
        median = statistics.median(times[label])
        print(f"{label:>9}: median {median:6.2f} s, {options.photos / median:5.2f} photos/s, "
              f"speed-up {base / median:4.2f}x over {first}")


def _megapixels(path: Path) -> float:
    from PIL import Image

    with Image.open(path) as image:
        return image.width * image.height / 1e6


if __name__ == "__main__":
    main()
