"""One round-trip test class, subclassed per format (as xarray does): a session → write →
``sv.load`` → the same spike trains, unit ids, labels, geometry and rate.

Sessions: a generated one with a raw recording, a sorting-only one with sparse integer ids and
a unit without spikes, and the real files in ``../shared/data`` (a KiloSort 2 folder, an NWB
2.4 file). Each subclass says what its format keeps; what it cannot keep must fail loudly or
be documented, never change silently.
"""

from __future__ import annotations

import os
import shutil
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.datasets import generate
from tests.conftest import shared_path

FS = 30_000.0


# -- sessions -------------------------------------------------------------------------------
def _generated() -> sv.Session:
    gt = generate(duration_s=4.0, num_channels=16, num_units=6, seed=11)
    sorting = gt.sorter_output.sorting
    recording = sv.Recording.from_array(np.asarray(gt.traces), gt.sampling_frequency,
                                        channel_locations=gt.channel_locations_um)
    return sv.Session(sorting, recording=recording, cache_dir=None)


def _sparse_ids() -> sv.Session:
    rng = np.random.default_rng(5)
    unit_ids = np.array([3, 7, 12, 40, 41])
    times = np.sort(rng.integers(0, 20 * int(FS), 3000))
    unit_index = rng.choice([0, 1, 3, 4], size=times.size)  # unit 12 has no spikes
    table = pd.DataFrame({"label": ["good", "mua", "noise", "good", "unsorted"]},
                         index=unit_ids)
    sorting = sv.Sorting.from_arrays(times, unit_index, FS, unit_ids=unit_ids,
                                     unit_table=table, num_samples=20 * int(FS))
    locations = np.c_[np.zeros(8), np.arange(8) * 20.0]
    return sv.Session(sorting, channel_ids=np.arange(8), channel_locations_um=locations,
                      cache_dir=None)


def _kilosort(tmp_path_factory) -> sv.Session:
    src = shared_path("bombcell_toy_kilosort")
    dst = tmp_path_factory.mktemp("ks") / "ks"
    shutil.copytree(src, dst)
    return sv.load(dst, sampling_frequency=FS)


def _nwb(tmp_path_factory) -> sv.Session:
    src = shared_path("nwb", "sub-4_ses-4_ecephys+image.nwb")
    dst = tmp_path_factory.mktemp("nwb") / src.name
    shutil.copy(src, dst)
    return sv.load(dst, sampling_frequency=FS)


SESSIONS = {"generated": _generated, "sparse_ids": _sparse_ids}
REAL = {"kilosort": _kilosort, "nwb": _nwb}


@pytest.fixture(scope="module", params=[*SESSIONS, *REAL])
def source(request, tmp_path_factory):
    name = request.param
    if name in SESSIONS:
        return name, SESSIONS[name]()
    return name, REAL[name](tmp_path_factory)


# -- the base class -------------------------------------------------------------------------
class RoundTrip:
    """Subclasses set ``suffix`` and implement ``write``; flags say what the format keeps."""

    suffix = ""
    keeps_geometry = True
    keeps_labels = True
    keeps_empty_units = True    # False: units without spikes are dropped (documented)
    exact_times = True          # False: compare counts per bin of ``bin_samples``
    bin_samples = 1
    writer_kwargs: ClassVar[dict] = {}

    def write(self, session, path, **kwargs):
        raise NotImplementedError

    def read(self, path) -> sv.Session:
        return sv.load(path, sampling_frequency=FS)

    @pytest.fixture
    def roundtrip(self, source, tmp_path):
        """(name, what should come back, what came back)."""
        name, session = source
        path = tmp_path / f"out{self.suffix}"
        self.write(session, path, **self.writer_kwargs)
        expected = session
        if not self.keeps_empty_units:
            counts = session.sorting.spike_counts()
            expected = sv.Session(session.sorting.select_units(counts.index[counts > 0]),
                                  channel_ids=session.channel_ids,
                                  channel_locations_um=session.channel_locations_um,
                                  cache_dir=None)
        return name, expected, self.read(path)

    # spike trains, ids, rate
    def test_unit_ids_and_rate(self, roundtrip):
        _, before, after = roundtrip
        np.testing.assert_array_equal(after.sorting.unit_ids, before.sorting.unit_ids)
        assert after.sorting.unit_ids.dtype.kind == before.sorting.unit_ids.dtype.kind
        assert after.sorting.sampling_frequency == pytest.approx(
            before.sorting.sampling_frequency, rel=1e-12)

    def test_spike_trains(self, roundtrip):
        _, before, after = roundtrip
        assert after.sorting.num_spikes == before.sorting.num_spikes
        for unit_id in before.sorting.unit_ids:
            a, b = before.sorting.spike_train(unit_id), after.sorting.spike_train(unit_id)
            if self.exact_times:
                np.testing.assert_array_equal(b, a, err_msg=f"unit {unit_id}")
            else:
                np.testing.assert_array_equal(b // self.bin_samples, a // self.bin_samples,
                                              err_msg=f"unit {unit_id}")

    def test_labels(self, roundtrip):
        _, before, after = roundtrip
        if not self.keeps_labels:
            pytest.skip(f"{type(self).__name__} does not store labels")
        assert after.sorting.labels.to_dict() == before.sorting.labels.to_dict()

    def test_geometry(self, roundtrip):
        _, before, after = roundtrip
        if not self.keeps_geometry or before.channel_locations_um is None:
            pytest.skip("no geometry to keep")
        got = np.asarray(after.channel_locations_um, dtype=float)
        want = np.asarray(before.channel_locations_um, dtype=float)
        np.testing.assert_allclose(got[:, :2], want[:, :2])

    # writing discipline
    def test_refuses_to_overwrite_and_keeps_the_original(self, source, tmp_path):
        _, session = source
        path = tmp_path / f"out{self.suffix}"
        self.write(session, path, **self.writer_kwargs)
        stamp = _snapshot(path)
        with pytest.raises(sv.InputError, match="overwrite"):
            self.write(session, path, **self.writer_kwargs)
        assert _snapshot(path) == stamp
        self.write(session, path, overwrite=True, **self.writer_kwargs)
        assert self.read(path).sorting.num_spikes == session.sorting.num_spikes

    def test_destination_under_a_file_is_refused(self, source, tmp_path):
        """A destination nobody can create (its parent is a file): a clear error, even as
        root, and nothing written."""
        _, session = source
        blocker = tmp_path / "not_a_folder"
        blocker.write_text("x")
        with pytest.raises((sv.InputError, OSError)):
            self.write(session, blocker / f"out{self.suffix}", **self.writer_kwargs)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]

    @pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                        reason="root writes into read-only folders")
    def test_unwritable_destination_leaves_nothing(self, source, tmp_path):
        _, session = source
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            with pytest.raises((sv.InputError, PermissionError, OSError)):
                self.write(session, folder / f"out{self.suffix}", **self.writer_kwargs)
            assert list(folder.iterdir()) == []
        finally:
            folder.chmod(0o755)

    def test_error_mid_write_leaves_nothing(self, source, tmp_path):
        """A failure at the writer's last progress report (the file is all but complete, not
        yet renamed into place) leaves no file behind."""
        _, session = source
        calls = []
        self.write(session, tmp_path / f"probe{self.suffix}",
                   progress=lambda step, fraction: calls.append((step, fraction)),
                   **self.writer_kwargs)
        assert calls and calls[-1][1] == 1.0, "progress must end at 1.0"
        for p in list(tmp_path.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()

        seen = []

        def explode(step, fraction):
            seen.append(step)
            if len(seen) == len(calls):
                raise RuntimeError("interrupted")

        path = tmp_path / f"out{self.suffix}"
        with pytest.raises(RuntimeError, match="interrupted"):
            self.write(session, path, progress=explode, **self.writer_kwargs)
        assert list(tmp_path.iterdir()) == []


def _snapshot(path):
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


# -- one subclass per format ----------------------------------------------------------------
class TestNWB(RoundTrip):
    suffix = ".nwb"

    def write(self, session, path, **kwargs):
        return sv.export.to_nwb(session, path, **kwargs)


class TestPhy(RoundTrip):
    suffix = ""
    keeps_empty_units = False  # phy's clusters are the ids found in spike_clusters.npy

    def write(self, session, path, **kwargs):
        return sv.export.to_phy(session, path, **kwargs)


class TestHDF5Ragged(RoundTrip):
    suffix = ".h5"
    keeps_geometry = False

    def write(self, session, path, **kwargs):
        return sv.export.to_hdf5(session, path, style="ragged", **kwargs)


class TestHDF5RaggedMs(TestHDF5Ragged):
    writer_kwargs: ClassVar[dict] = {"time_unit": "ms"}


class TestHDF5Group(TestHDF5Ragged):
    def write(self, session, path, **kwargs):
        return sv.export.to_hdf5(session, path, style="group", **kwargs)


class TestHDF5PairedSamples(TestHDF5Ragged):
    writer_kwargs: ClassVar[dict] = {"time_unit": "samples"}

    def write(self, session, path, **kwargs):
        return sv.export.to_hdf5(session, path, style="paired", **kwargs)


class TestHDF5Raster(TestHDF5Ragged):
    exact_times = False
    bin_samples = 30  # 1 ms at 30 kHz

    def write(self, session, path, **kwargs):
        return sv.export.to_hdf5(session, path, style="raster", bin_ms=1.0, **kwargs)

    def test_spike_trains(self, roundtrip):
        before = roundtrip[1]
        if before.sorting.sampling_frequency != FS:
            pytest.skip("bins of a whole number of samples only at 30 kHz here")
        super().test_spike_trains(roundtrip)
