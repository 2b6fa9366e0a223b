import json
import subprocess
import sys

import pytest

from spikeviz.app.cli import main
from tests.conftest import shared_path


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeviz", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_info_json_on_real_kilosort():
    folder = shared_path("bombcell_toy_kilosort")
    out = run_cli("info", folder, "--sampling-frequency", "30000", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    for key in ("format", "num_units", "num_spikes", "sampling_frequency", "duration_s",
                "num_channels", "has_recording"):
        assert key in info
    assert info["format"] == "phy" and info["num_units"] == 15
    assert info["num_spikes"] == 94_565 and info["num_channels"] == 356
    assert info["has_recording"] is False and info["sampling_frequency"] == 30000.0
    assert info["labels"] == {"good": 4, "mua": 8, "noise": 1, "non-soma": 2}


def test_info_text(capsys):
    folder = shared_path("bombcell_toy_kilosort")
    assert main(["info", str(folder), "--sampling-frequency", "30000"]) == 0
    text = capsys.readouterr().out
    assert "94,565" in text and "good 4" in text and "356" in text


def test_bad_input_is_one_line_exit_2(tmp_path):
    folder = shared_path("bombcell_toy_kilosort")
    out = run_cli("info", folder)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sampling-frequency" in lines[0]
    assert "Traceback" not in out.stderr
    out = run_cli("info", tmp_path / "missing")
    assert out.returncode == 2 and "no such file" in out.stderr


def test_debug_shows_traceback(tmp_path):
    out = run_cli("--debug", "info", tmp_path / "missing")
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_help_lists_commands():
    out = run_cli("--help")
    for command in ("demo", "serve", "info", "generate"):
        assert command in out.stdout


@pytest.mark.parametrize("args", [["info"], ["generate"]])
def test_usage_errors_exit_2(args):
    assert run_cli(*args).returncode == 2


@pytest.mark.parametrize("seconds, clock", [(59.96, "1:00.0"), (3599.97, "1:00:00.0"),
                                            (4475.874, "1:14:35.9"), (0.04, "0:00.0")])
def test_clock_never_shows_60(seconds, clock):
    from spikeviz.app.formatting import format_clock

    assert format_clock(seconds) == clock
