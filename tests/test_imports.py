"""``import bgremove`` and ``bgremove --help`` stay light: no mediapipe, onnxruntime or PyAV."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("mediapipe", "onnxruntime", "av", "cv2", "tqdm", "pooch", "PIL")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return set(completed.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import bgremove",
        "import bgremove.cli",
        "from click.testing import CliRunner\nfrom bgremove.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\nassert result.exit_code == 0 and '--blur' in result.output",
    ],
)
def test_nothing_heavy_is_imported(code: str) -> None:
    loaded = _modules_after(code)
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_every_option_in_help_has_an_example() -> None:
    from click.testing import CliRunner

    from bgremove.cli import main

    for parameter in main.params:
        if getattr(parameter, "help", None) and parameter.name not in ("help", "version"):
            assert "Example:" in parameter.help, parameter.name
    help_text = CliRunner().invoke(main, ["--help"]).output
    assert "Examples:" in help_text and "Exit codes" in help_text
