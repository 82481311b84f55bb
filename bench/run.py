"""Speed and memory of bgremove against the naive per-frame pipeline and a decode+encode floor.

    python bench/run.py                       # every case, 3 runs each, prints a markdown table
    python bench/run.py --quick               # 1 run, 720p and 10 photos only, no 10-minute RSS case
    python bench/run.py --cases video-720-blur,help --runs 5
    python bench/run.py --list                # the case names
    python bench/run.py --cases images --bgremove-options=--fast   # bgremove with more options
    python bench/run.py --cases images-bg --against HEAD~3 --no-baselines --runs 5   # against itself

Each case runs three whole processes on the same input, interleaved run by run (A B C A B C ...) so
that load from elsewhere hits them alike, and reports the median wall time of ``--runs`` runs:

- **bgremove**: the CLI as a user runs it (``bgremove IN --blur 45 -o DIR -q``), this checkout.
- **naive**: ``bench/naive.py``, the seed articles' pipeline (OpenCV read, MediaPipe selfie in IMAGE
  mode on the full frame, ``np.where`` against a full-resolution ``GaussianBlur(45, 45)``, OpenCV
  ``mp4v`` writer, no audio; see that file).
- **floor**: ``bench/floor.py``, decode + encode with bgremove's default output settings and no
  segmentation (see that file).

With ``--against REV`` a fourth process runs bgremove as it was at git revision REV (its package
extracted into the work folder), interleaved with the others: this VM's speed drifts by a fifth within
the hour and the naive pipeline's with it, so a change is best judged against bgremove itself.
``--no-baselines`` leaves out the naive pipeline and the floor (an A/B run in half the time).

Ratios are bgremove's time over the others' (lower is better): the table's are ratios of the
medians, and a line under it gives the ratios run by run (each bgremove run over the runs made beside
it), whose median the VM's drift over a case's runs moves less. Inputs are made once from
``../shared/data`` (or ``$BGREMOVE_DATA_DIR``) into ``bench/_work`` (git-ignored): see ``inputs.py``.
Models come from ``$BGREMOVE_MODEL_DIR`` (default ``../shared/models``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import inputs  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_MODELS = ROOT.parent / "shared" / "models"


@dataclass
class Sample:
    seconds: float
    cpu: float  # user + system seconds of the process and its threads
    rss_mb: float  # peak resident set size


@dataclass
class Tool:
    name: str
    command: list[str]
    output: Path
    samples: list[Sample] = field(default_factory=list)
    env: dict[str, str] | None = None  # instead of the bench's environment

    def median(self, attribute: str = "seconds") -> float:
        return statistics.median(getattr(sample, attribute) for sample in self.samples)

    def spread(self) -> str:
        values = [sample.seconds for sample in self.samples]
        return f"{min(values):.2f}-{max(values):.2f}" if len(values) > 1 else ""


@dataclass
class Case:
    name: str
    kind: str  # "video", "images", "rss" or "help"
    description: str
    units: int = 0  # frames or images per run
    tools: list[Tool] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def bgremove_command() -> list[str]:
    """The ``bgremove`` script installed beside this Python (a virtual environment's, or the
    interpreter's own ``bin``), else the one on PATH (either imports this checkout through PYTHONPATH).

    The one beside the interpreter first: on PATH a version manager's shim may stand for it (pyenv's
    runs bash and ``pyenv exec`` first: 0.15 against 0.08-0.10 s for ``bgremove --help`` here), which
    the naive pipeline and the floor, started with this Python, do not pay.
    """
    beside = Path(sys.executable).with_name("bgremove")
    if beside.is_file():
        return [str(beside)]
    script = shutil.which("bgremove")
    return [script] if script else [sys.executable, "-m", "bgremove"]


def byte_compile(package: Path = ROOT / "bgremove") -> None:
    """Compile bgremove's modules to bytecode, as ``pip install`` does and as Python does on a first run.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (these CI machines set it), an editable install compiles
    bgremove's 20-odd modules from source in every run (about 0.1 s here) that an installed bgremove never
    pays, and the naive pipeline (one script over installed, compiled packages) hardly pays at all.
    """
    import compileall

    if not compileall.compile_dir(str(package), quiet=1):
        raise SystemExit(f"could not byte-compile {package}")


def revision_command(revision: str, work: Path) -> tuple[list[str], dict[str, str], str]:
    """A command that runs bgremove as it was at git ``revision`` (its package extracted, once, into
    ``work``), the environment to run it in, and the revision's short name."""
    def git(*arguments: str) -> bytes:
        done = subprocess.run(["git", "-C", str(ROOT), *arguments], capture_output=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"git {' '.join(arguments)}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    folder = work / f"revision-{commit[:12]}"
    if not (folder / "bgremove" / "__main__.py").exists():
        import io
        import tarfile

        partial = folder.with_name(folder.name + ".part")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", commit, "bgremove"))) as archive:
            archive.extractall(partial, filter="data")
        shutil.rmtree(folder, ignore_errors=True)
        partial.rename(folder)
    byte_compile(folder / "bgremove")
    env = environment()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH")]))
    # the folder first on the path, before the current folder that ``-c`` puts there (this checkout,
    # when the bench runs from it) and the editable install's entry
    launcher = (f"import runpy, sys; sys.path.insert(0, {str(folder)!r}); sys.argv[0] = 'bgremove'; "
                "import bgremove; assert bgremove.__file__.startswith(sys.path[0]), bgremove.__file__; "
                "runpy.run_module('bgremove', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", launcher], env, git("rev-parse", "--short", commit).decode().strip()


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("BGREMOVE_MODEL_DIR", str(DEFAULT_MODELS))
    return env


# Linux gives a process that calls exec the peak RSS of the image it replaced (ru_maxrss keeps the
# larger): a command started straight from this bench, which has NumPy, OpenCV and PyAV loaded, would
# report at least the bench's own RSS. So each command is started from this small launcher, a fresh
# interpreter of some 10 MB, which times it and writes its wall time, CPU time and peak RSS to a file.
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as result:
    json.dump([seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss], result)
sys.exit(os.waitstatus_to_exitcode(status) & 255)
"""


def measure(command: list[str], env: dict[str, str]) -> Sample:
    """Run ``command`` to completion; wall time, CPU time and peak RSS of that process alone."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bgremove-bench-") as folder:
        report = Path(folder) / "usage.json"
        process = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, str(report), *command], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if process.returncode != 0 or not report.exists():
            tail = process.stderr.decode(errors="replace")[-2000:]
            raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{tail}")
        seconds, cpu, max_rss_kb = json.loads(report.read_text())
    return Sample(seconds, cpu, max_rss_kb / 1024)


def clean(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.demux(container.streams.video[0]) if _.size)


def check_output(tool: Tool, case: Case) -> None:
    if case.kind == "video":
        outputs = [tool.output] if tool.output.suffix else sorted(tool.output.glob("*.*"))
        if len(outputs) != 1 or video_frames(outputs[0]) != case.units:
            found = video_frames(outputs[0]) if outputs else 0
            raise SystemExit(f"{case.name}/{tool.name}: expected one video of {case.units} frames, got {found}")
    elif case.kind == "images":
        count = len(list(tool.output.glob("*_nobg.*")))
        if count != case.units:
            raise SystemExit(f"{case.name}/{tool.name}: expected {case.units} outputs, got {count}")


def make_cases(arguments: argparse.Namespace, work: Path) -> list[Case]:
    data = arguments.data
    wanted = set(arguments.cases)
    out = work / "out"
    python = sys.executable
    bgremove = bgremove_command()
    extra = shlex.split(arguments.bgremove_options)  # after each video and photo case's own options
    shown = f" (bgremove with `{arguments.bgremove_options.strip()}`)" if extra else ""
    background = inputs.make_background(data, work / "background.jpg")
    cases: list[Case] = []
    against = revision_command(arguments.against, work) if arguments.against else None

    def finish(case: Case, folder: Path) -> None:
        """The revision's run beside this checkout's; the baselines left out when asked."""
        ours = case.tools[0]
        if against is not None:
            command, env, name = against
            arguments_after = ours.command[len(bgremove):]
            output = folder / "revision"
            replaced = [str(output) if part == str(ours.output) else part for part in arguments_after]
            case.tools.insert(1, Tool(f"bgremove@{name}", [*command, *replaced], output, env=env))
        if arguments.no_baselines:
            case.tools = [tool for tool in case.tools if tool.name.startswith("bgremove")]

    def selected(name: str) -> bool:
        return any(name == want or name.startswith(want + "-") for want in wanted)

    def video_case(name: str, clip: Path, size: tuple[int, int], mode: str, length: str) -> None:
        width, height = size
        option = {"blur": ["--blur", "45"], "bg": ["--bg", str(background)], "transparent": ["--transparent"]}[mode]
        naive_option = {"blur": ["--blur", "45"], "bg": ["--bg", str(background)], "transparent": ["--green"]}[mode]
        extension = ".webm" if mode == "transparent" else ".mp4"
        case = Case(name, "video", f"{width}x{height} {length} clip, `{' '.join(option[:1])}`{shown}",
                    units=video_frames(clip))
        folder = out / name
        case.tools = [
            Tool("bgremove", [*bgremove, str(clip), *option, *extra, "-o", str(folder / "bgremove"), "-q"],
                 folder / "bgremove"),
            Tool("naive", [python, str(BENCH / "naive.py"), "video", str(clip), str(folder / "naive.mp4"),
                           *naive_option], folder / "naive.mp4"),
            Tool("floor", [python, str(BENCH / "floor.py"), "video", str(clip), str(folder / f"floor{extension}")],
                 folder / f"floor{extension}"),
        ]
        if mode == "transparent":
            case.notes.append("naive writes the subject on green (MP4V has no alpha); bgremove and floor "
                              "write VP9 with alpha in WebM and re-encode the audio to Opus")
        finish(case, folder)
        cases.append(case)

    for height, width in ((720, 1280), (1080, 1920)):
        for mode in ("blur", "bg", "transparent"):
            name = f"video-{height}-{mode}"
            if selected(name):
                clip = inputs.make_clip(data, work / f"clip_{height}p.mp4", width, height)
                video_case(name, clip, (width, height), mode, "10 s")

    # Only when named: the 720p clip played 6 times, to tell what of the floor ratio is the start's (it
    # weighs 6 times less here) and what the frames' (the naive pipeline takes a minute a run)
    if selected("long-720-blur"):
        short = inputs.make_clip(data, work / "clip_720p.mp4", 1280, 720)
        long = inputs.make_long_clip(short, work / "clip_720p_60s.mp4", repeats=6)
        video_case("long-720-blur", long, (1280, 720), "blur", "60 s")

    photos_count = 10 if arguments.quick else 40
    for mode in ("transparent", "bg"):
        name = f"images-{mode}"
        if not selected(name):
            continue
        photos = inputs.make_photos(data, work / "photos", 40)
        if photos_count < 40:
            subset = work / f"photos_{photos_count}"
            if not subset.exists():
                subset.mkdir()
                for path in sorted(photos.glob("*.jpg"))[:photos_count]:
                    os.link(path, subset / path.name)
            photos = subset
        option = ["--transparent"] if mode == "transparent" else ["--bg", str(background)]
        folder = out / name
        fmt = "PNG" if mode == "transparent" else "JPEG"
        case = Case(name, "images", f"{photos_count} photos of 12 MP, `{option[0]}` -> {fmt}{shown}",
                    units=photos_count)
        case.tools = [
            Tool("bgremove", [*bgremove, str(photos), *option, *extra, "-o", str(folder / "bgremove"), "-q"],
                 folder / "bgremove"),
            Tool("naive", [python, str(BENCH / "naive.py"), "images", str(photos), str(folder / "naive"), *option],
                 folder / "naive"),
            Tool("floor", [python, str(BENCH / "floor.py"), "images", str(photos), str(folder / "floor"),
                           "--format", fmt], folder / "floor"),
        ]
        finish(case, folder)
        cases.append(case)

    if selected("rss") and not (arguments.quick and "rss" not in wanted):
        short = inputs.make_clip(data, work / "clip_1080p.mp4", 1920, 1080)
        long = inputs.make_long_clip(short, work / "clip_1080p_10min.mp4")
        case = Case("rss", "rss", "peak RSS, 1920x1080 `--blur 45`: 10 s clip vs the same looped to 10 min")
        case.tools = [
            Tool("bgremove 10 s", [*bgremove, str(short), "--blur", "45", "-o", str(out / "rss" / "short"), "-q"],
                 out / "rss" / "short"),
            Tool("bgremove 10 min", [*bgremove, str(long), "--blur", "45", "-o", str(out / "rss" / "long"), "-q"],
                 out / "rss" / "long"),
        ]
        cases.append(case)

    if selected("help"):
        case = Case("help", "help", "`bgremove --help`")
        case.tools = [Tool("bgremove", [*bgremove, "--help"], out / "help")]
        cases.append(case)
    return cases


def run_case(case: Case, runs: int, env: dict[str, str]) -> None:
    repeats = 1 if case.kind == "rss" else (max(runs, 5) if case.kind == "help" else runs)
    for run in range(repeats):
        for tool in case.tools:
            clean(tool.output)
            tool.samples.append(measure(tool.command, tool.env or env))
            if run == 0:
                check_output(tool, case)
            last = tool.samples[-1]
            print(f"  {case.name:24s} {tool.name:16s} run {run + 1}: {last.seconds:7.2f} s  cpu {last.cpu:7.2f} s  "
                  f"rss {last.rss_mb:6.0f} MB", file=sys.stderr, flush=True)


def load() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "?"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def versions() -> str:
    import importlib.metadata as metadata

    parts = [f"Python {platform.python_version()}"]
    for package in ("mediapipe", "av", "opencv-contrib-python", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            parts.append(f"{package} {metadata.version(package)}")
    return ", ".join(parts)


def run_by_run(tool: Tool, other: Tool) -> str:
    """``tool``'s time over ``other``'s, run by run (the runs are interleaved, so each pair ran at nearly
    the same moment), as "median (min-max)"."""
    ratios = sorted(a.seconds / b.seconds for a, b in zip(tool.samples, other.samples, strict=False))
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def paired_ratios(case: Case) -> str:
    """bgremove's time over each other tool's, run by run (``run_by_run``), as "/name median (min-max)";
    empty with fewer than two runs."""
    tools = {tool.name: tool for tool in case.tools}
    ours = tools["bgremove"]
    parts = [f"/{name} {run_by_run(ours, tool)}" for name, tool in tools.items()
             if name != "bgremove" and len(tool.samples) >= 2]
    return f"{case.name} " + ", ".join(parts) if parts else ""


def report(cases: list[Case], runs: int, started_load: str) -> str:
    lines = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; {versions()}.",
        f"Date {datetime.date.today().isoformat()}; median of {runs} run(s) (spread min-max in brackets); "
        f"load average before {started_load}, after {load()}.",
        "",
    ]
    videos = [case for case in cases if case.kind in ("video", "images")]
    if videos:
        names = [tool.name for tool in videos[0].tools]
        revision = next((name for name in names if name.startswith("bgremove@")), None)
        baselines = "naive" in names
        header = ["case", "bgremove s"]
        if revision:
            header += [f"{revision} s", f"bgremove/{revision}"]
        if baselines:
            header += ["naive s", "floor s", "bgremove/naive", "bgremove/floor"]
        header += ["bgremove rate"] + (["naive rate"] if baselines else [])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for case in videos:
            tools = {tool.name: tool for tool in case.tools}
            ours = tools["bgremove"]
            unit = "fps" if case.kind == "video" else "img/s"

            def cell(tool: Tool) -> str:
                spread = tool.spread()
                return f"{tool.median():.2f}" + (f" ({spread})" if spread else "")

            row = [case.description, cell(ours)]
            if revision:
                row += [cell(tools[revision]), f"{ours.median() / tools[revision].median():.2f}"]
            if baselines:
                naive, floor = tools["naive"], tools["floor"]
                row += [cell(naive), cell(floor), f"{ours.median() / naive.median():.2f}",
                        f"{ours.median() / floor.median():.2f}"]
            row.append(f"{case.units / ours.median():.1f} {unit}")
            if baselines:
                row.append(f"{case.units / tools['naive'].median():.1f} {unit}")
            lines.append("| " + " | ".join(row) + " |")
        paired = [part for case in videos if (part := paired_ratios(case))]
        if paired:
            lines.append("\nRatios run by run (each bgremove run over the runs made beside it, which the "
                         "VM's drift hits alike; median, min-max): " + "; ".join(paired) + ".")
        for case in videos:
            for note in case.notes:
                lines.append(f"\n{case.name}: {note}.")
        lines.append("")
        lines.append("CPU seconds and peak RSS MB (medians): " + "; ".join(
            f"{case.name} " + "/".join(f"{tool.median('cpu'):.1f} s {tool.median('rss_mb'):.0f} MB"
                                       for tool in case.tools) for case in videos
        ) + f" ({'/'.join(names)}).")
        lines.append("")
    for case in cases:
        if case.kind == "rss":
            short, long = case.tools
            ratio = long.samples[0].rss_mb / short.samples[0].rss_mb
            lines += [
                f"Peak RSS ({case.description}): 10 s {short.samples[0].rss_mb:.0f} MB, "
                f"10 min {long.samples[0].rss_mb:.0f} MB ({(ratio - 1) * 100:+.1f}%); "
                f"10 min took {long.samples[0].seconds:.0f} s.",
                "",
            ]
        elif case.kind == "help":
            tool = case.tools[0]
            lines += [f"`bgremove --help`: {tool.median():.3f} s (median of {len(tool.samples)}, {tool.spread()}).", ""]
    return "\n".join(lines)


ALL_CASES = [f"video-{height}-{mode}" for height in (720, 1080) for mode in ("blur", "bg", "transparent")] + [
    "images-transparent", "images-bg", "rss", "help", "long-720-blur"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="all", help="comma-separated case names or prefixes "
                        "(video, video-720, images, rss, help); default all")
    parser.add_argument("--runs", type=int, default=None, help="runs per case (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="1 run, 720p only, 10 photos, no 10-minute case")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("BGREMOVE_DATA_DIR") or DEFAULT_DATA))
    parser.add_argument("--work", type=Path, default=BENCH / "_work", help="where inputs and outputs go")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--against", default=None, metavar="REV",
                        help="also run bgremove as it was at this git revision, interleaved (e.g. HEAD~2)")
    parser.add_argument("--no-baselines", action="store_true",
                        help="leave out the naive pipeline and the floor (with --against: an A/B run)")
    parser.add_argument("--bgremove-options", default="", metavar="OPTIONS",
                        help="more options for bgremove in the video and photo cases, e.g. '--fast' "
                             "(the naive pipeline and the floor stay as they are)")
    arguments = parser.parse_args()
    if arguments.list:
        print("\n".join(ALL_CASES))
        return
    if arguments.cases == "all":
        arguments.cases = ["video-720", "images", "help"] if arguments.quick else ["video", "images", "rss", "help"]
    else:
        arguments.cases = [name.strip() for name in arguments.cases.split(",") if name.strip()]
        unknown = [name for name in arguments.cases if not any(case == name or case.startswith(name + "-")
                                                                for case in ALL_CASES)]
        if unknown:
            parser.error(f"unknown case(s) {', '.join(unknown)}; see --list")
    runs = arguments.runs or (1 if arguments.quick else 3)
    arguments.work.mkdir(parents=True, exist_ok=True)
    byte_compile()
    started_load = load()
    cases = make_cases(arguments, arguments.work)
    env = environment()
    for case in cases:
        print(f"{case.name}: {case.description}", file=sys.stderr, flush=True)
        run_case(case, runs, env)
    print(report(cases, runs, started_load))


if __name__ == "__main__":
    main()
