"""``spikeviz compare``: the summary, the JSON report (a contract) and bad input (exit 2)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import spikeviz as sv
from spikeviz import datasets
from spikeviz.app.cli import main
from spikeviz.io.npz import write_sorting

FS = 30000.0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "spikeviz", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """ground truth (A 1000 spikes, B 600, C 400) and a sorter (70 % / 30 % split of A,
    B + C merged, a noise unit) as NPZ sortings, plus a 20 kHz one."""
    root = tmp_path_factory.mktemp("compare")
    base = np.arange(1000) * 3000
    a, b, c = base + 100, base[:600] + 1100, base[:400] + 2100
    keep = np.arange(1000) % 10 < 7

    def make(trains, fs=FS):
        t = np.concatenate(trains)
        u = np.repeat(np.arange(len(trains)), [len(x) for x in trains])
        return sv.Sorting.from_arrays(t, u, fs)

    gt = write_sorting(make([a, b, c]), root / "truth.npz")
    tested = write_sorting(make([a[keep], a[~keep], np.sort(np.concatenate([b, c])),
                                 base[:200] + 2600]), root / "sorter.npz")
    other = write_sorting(make([a], fs=20000.0), root / "other_rate.npz")
    return gt, tested, other


def test_ground_truth_summary_and_json_file(files, tmp_path, capsys):
    gt, tested, _ = files
    out = tmp_path / "report.json"
    assert main(["compare", str(gt), str(tested), "--ground-truth", "--exhaustive-gt",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "truth.npz: 3 units, 2,000 spikes" in text and "sorter.npz: 4 units" in text
    assert "matched units   2" in text and "mean agreement  0.650" in text
    for line in ("well detected   0", "overmerged      1", "redundant       1",
                 "false positive  1", "bad             2", "mean accuracy   0.433",
                 "mean recall     0.567", "mean precision  0.533", f"wrote {out}"):
        assert line in text, line
    report = json.loads(out.read_text())
    assert report["matches"] == {"0": 0, "1": 2, "2": None}
    assert report["agreement"]["0"] == {"0": 0.7, "1": 0.3, "2": 0.0, "3": 0.0}
    assert report["performance"]["0"]["accuracy"] == 0.7
    assert report["performance"]["1"]["recall"] == 1.0
    assert report["performance"]["1"]["precision"] == 0.6
    assert report["performance"]["2"]["recall"] == 0.0
    assert report["category_counts"] == {
        "num_gt": 3, "num_sorter": 4, "num_well_detected": 0, "num_overmerged": 1,
        "num_redundant": 1, "num_false_positive": 1, "num_bad": 2}
    # the same numbers as the Python API
    c = sv.compare(sv.load(gt).sorting, sv.load(tested).sorting, ground_truth=True,
                   exhaustive_gt=True)
    assert report["summary"]["mean_accuracy"] == c.summary()["mean_accuracy"]


def test_json_to_stdout_without_ground_truth(files):
    gt, tested, _ = files
    out = run_cli("compare", gt, tested, "--json", "-", "--delta-ms", "0.2",
                  "--sampling-frequency", "30000")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)  # nothing else on stdout
    assert report["summary"]["delta_samples"] == 6 and report["summary"]["ground_truth"] is False
    assert report["matches"] == {"0": 0, "1": 2, "2": None}
    assert "performance" not in report and "category_counts" not in report


def test_generated_folder_against_its_ground_truth(tmp_path, capsys):
    folder = datasets.generate_to_folder(tmp_path / "gen", duration_s=5.0, num_channels=8,
                                         num_units=6, seed=1)
    assert main(["compare", str(folder / "ground_truth.npz"), str(folder), "--ground-truth",
                 "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["performance"]) == {str(u) for u in range(6)}
    truth = datasets.read_ground_truth(folder)
    good = {int(c): f["ground_truth_unit_ids"][0] for c, f in truth["clusters"].items()
            if f["kind"] in ("good", "drifting")}
    assert good and report["category_counts"]["num_well_detected"] == len(good)
    for cluster, unit in good.items():
        assert report["matches"][str(unit)] == cluster
        assert report["performance"][str(unit)]["accuracy"] > 0.9


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("rate", "same sampling frequency"),
    ("delta", "delta_ms"),
    ("json_folder", "destination folder does not exist"),
])
def test_bad_input_is_one_line_exit_2(files, tmp_path, case, message):
    gt, tested, other = files
    args = {"missing": (tmp_path / "nope.npz", tested),
            "rate": (gt, other),
            "delta": (gt, tested, "--delta-ms", "-1"),
            "json_folder": (gt, tested, "--json", tmp_path / "no" / "r.json")}[case]
    out = run_cli("compare", *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spikeviz: error:") and message in lines[0]
