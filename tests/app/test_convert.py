"""``spikeviz convert``: every target format, options checked, atomic, refuses to overwrite."""

from __future__ import annotations

import json

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.app.cli import main
from spikeviz.datasets import generate_to_folder

META = """\
NWBFile:
  session_description: Synthetic probe recording converted by spikeviz.
  identifier: 0b8c54a2-6f6e-4a39-9f7c-3f1d2b0f4e11
  session_start_time: 2024-03-05T10:15:00+01:00
  experimenter: [Doe, Jane]
  institution: Example Institute
  lab: Example Lab
Subject:
  subject_id: mouse-7
  species: Mus musculus
  sex: F
  age: P90D
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return generate_to_folder(tmp_path_factory.mktemp("src") / "ks", duration_s=3.0,
                              num_channels=16, num_units=5, seed=4)


def _trains(session):
    return {u: session.sorting.spike_train(u) for u in session.sorting.unit_ids}


def _same(a, b):
    ta, tb = _trains(a), _trains(b)
    assert ta.keys() == tb.keys()
    for u in ta:
        np.testing.assert_array_equal(ta[u], tb[u])


@pytest.mark.parametrize("dst, extra", [
    ("out.nwb", []),
    ("out.h5", ["--style", "ragged"]),
    ("out.h5", ["--style", "paired", "--time-unit", "samples"]),
    ("phy_out", ["--raw", "none"]),
])
def test_convert_each_format_reads_back(folder, tmp_path, capsys, dst, extra):
    out = tmp_path / dst
    assert main(["convert", str(folder), str(out), *extra]) == 0
    printed = capsys.readouterr()
    assert f"wrote {out}" in printed.out
    assert "done in" in printed.err  # the progress bar (one line per step off a terminal)
    _same(sv.load(folder), sv.load(out, sampling_frequency=30_000.0))


def test_convert_with_metadata_file(folder, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    meta = tmp_path / "meta.yaml"
    meta.write_text(META)
    out = tmp_path / "out.nwb"
    assert main(["convert", str(folder), str(out), "--to", "nwb", "--metadata",
                 str(meta)]) == 0
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        nwbfile = io.read()
        assert nwbfile.subject.species == "Mus musculus"
        assert nwbfile.subject.age == "P90D"
        assert nwbfile.session_start_time.utcoffset().total_seconds() == 3600
        assert nwbfile.identifier == "0b8c54a2-6f6e-4a39-9f7c-3f1d2b0f4e11"


def test_convert_refuses_to_overwrite(folder, tmp_path, capsys):
    out = tmp_path / "out.nwb"
    assert main(["convert", str(folder), str(out)]) == 0
    before = out.read_bytes()
    assert main(["convert", str(folder), str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["convert", str(folder), str(out), "--overwrite", "--quiet"]) == 0


def test_convert_refuses_misplaced_and_unknown_options(folder, tmp_path, capsys):
    assert main(["convert", str(folder), str(tmp_path / "x.nwb"), "--style", "raster"]) == 2
    assert "--style" in capsys.readouterr().err
    assert main(["convert", str(folder), str(tmp_path / "x.csv")]) == 2
    assert "--to" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_convert_bad_metadata_is_one_line(folder, tmp_path, capsys):
    meta = tmp_path / "meta.yaml"
    meta.write_text("Subject:\n  sex: yes please\n")
    assert main(["convert", str(folder), str(tmp_path / "x.nwb"), "--metadata",
                 str(meta)]) == 2
    err = capsys.readouterr().err
    assert "sex" in err and "Traceback" not in err
    assert not (tmp_path / "x.nwb").exists()


def test_convert_then_info_json(folder, tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["convert", str(folder), str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    src = sv.load(folder).info()
    assert info["format"] == "hdf5"
    assert (info["num_units"], info["num_spikes"]) == (src["num_units"], src["num_spikes"])
