"""``sv.load`` picks the right reader for every format issue 4 adds, including what only
SpikeInterface opens, and says what to install when SpikeInterface is missing."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

import spikeviz as sv
from spikeviz.io import detect_format
from tests.conftest import shared_path

FS = 30_000.0


@pytest.fixture(scope="module")
def session():
    rng = np.random.default_rng(2)
    times = np.sort(rng.integers(0, 10 * int(FS), 800))
    units = rng.integers(0, 4, times.size)
    sorting = sv.Sorting.from_arrays(times, units, FS, unit_ids=[5, 6, 7, 9])
    return sv.Session(sorting, cache_dir=None)


def _same_trains(a, b):
    np.testing.assert_array_equal(a.unit_ids, b.unit_ids)
    for u in a.unit_ids:
        np.testing.assert_array_equal(a.spike_train(u), b.spike_train(u))


def test_nwb_and_hdf5_are_told_apart_whatever_the_suffix(session, tmp_path):
    nwb = sv.export.to_nwb(session, tmp_path / "a.nwb")
    disguised = tmp_path / "nwb_as.h5"
    shutil.copy(nwb, disguised)
    h5 = sv.export.to_hdf5(session, tmp_path / "b.h5")
    assert detect_format(nwb) == "nwb"
    assert detect_format(disguised) == "nwb"  # an NWB file is HDF5 too: NWB wins
    assert detect_format(h5) == "hdf5"
    for path in (nwb, disguised, h5):
        loaded = sv.load(path)
        _same_trains(loaded.sorting, session.sorting)


def test_real_nwb_file_opens_with_load(tmp_path):
    src = shared_path("nwb", "sub-4_ses-4_ecephys+image.nwb")
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    with pytest.raises(sv.InputError, match="sampling_frequency"):
        sv.load(dst)  # no raw series, no Units resolution: the rate must be given
    loaded = sv.load(dst, sampling_frequency=FS)
    assert loaded.format == "nwb"
    assert (loaded.sorting.num_units, loaded.sorting.num_spikes) == (35, 214_278)


def test_spikeinterface_saved_sorting_opens_with_load(session, tmp_path):
    pytest.importorskip("spikeinterface")
    si_sorting = sv.to_spikeinterface(session.sorting)
    folder = tmp_path / "si_sorting"
    si_sorting.save(folder=folder)
    assert detect_format(folder) == "spikeinterface"
    loaded = sv.load(folder)
    assert loaded.format == "spikeinterface"
    _same_trains(loaded.sorting, session.sorting)


def test_missing_spikeinterface_says_what_to_install(session, tmp_path, monkeypatch):
    pytest.importorskip("spikeinterface")
    folder = tmp_path / "si_sorting"
    sv.to_spikeinterface(session.sorting).save(folder=folder)
    for name in [m for m in sys.modules if m.split(".")[0] == "spikeinterface"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "spikeinterface", None)  # import fails
    with pytest.raises(sv.InputError, match=r"pip install spikeviz\[spikeinterface\]"):
        sv.load(folder)
    with pytest.raises(ImportError, match="SpikeInterface is not installed"):
        sv.from_spikeinterface(object())
