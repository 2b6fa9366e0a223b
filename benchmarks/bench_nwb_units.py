"""Writing an NWB Units table: pynwb's ``add_unit`` loop versus spikeviz's vectorised columns.

~830 k spikes / 100 units (seeded, lognormal rates, 600 s at 30 kHz). Both sides write the
same content to a new file: spike times (s), obs_intervals, a ``quality`` label column.

(a) pynwb: ``nwbfile.add_unit(spike_times=..., obs_intervals=..., quality=..., id=...)`` per
    unit, then ``NWBHDF5IO.write``;
(b) spikeviz: ``write_nwb(session, path, compression=None)`` (validation, the whole Units
    table built from flat arrays, atomic write) -- and, for information, with its default
    gzip compression of the spike times.

Run: ``.venv/bin/python benchmarks/bench_nwb_units.py``.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, row, spike_dataset

NUM_SPIKES = 830_000
NUM_UNITS = 100
DURATION_S = 600.0
START = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)
METADATA = {"NWBFile": {"session_start_time": START.isoformat(), "identifier": "bench",
                        "session_description": "benchmark"}}


def make_session():
    import pandas as pd

    import spikeviz as sv

    sample_index, unit_index, fs = spike_dataset(NUM_SPIKES, NUM_UNITS, DURATION_S, seed=0)
    labels = np.array(["good", "mua", "noise"])[np.arange(NUM_UNITS) % 3]
    table = pd.DataFrame({"label": labels},
                         index=pd.Index(np.arange(NUM_UNITS), name="unit_id"))
    sorting = sv.Sorting.from_arrays(sample_index, unit_index, fs, unit_table=table,
                                     num_samples=int(DURATION_S * fs))
    return sv.Session(sorting, cache_dir=None)


def pynwb_loop(session, path: Path) -> None:
    from pynwb import NWBHDF5IO, NWBFile

    sorting = session.sorting
    fs = sorting.sampling_frequency
    nwbfile = NWBFile(session_description="benchmark", identifier="bench",
                      session_start_time=START)
    nwbfile.add_unit_column(name="quality", description="curation label")
    labels = sorting.labels
    interval = [[0.0, sorting.num_samples / fs]]
    for uid in sorting.unit_ids.tolist():
        nwbfile.add_unit(spike_times=sorting.spike_train(uid) / fs, obs_intervals=interval,
                         quality=labels[uid], id=uid)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)


def spikeviz_write(session, path: Path, compression=None) -> None:
    from spikeviz.io.nwb_write import write_nwb

    write_nwb(session, path, METADATA, overwrite=True, compression=compression)


def check_same_content(session, a: Path, b: Path) -> None:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(a), "r") as io_a, NWBHDF5IO(str(b), "r") as io_b:
        ua, ub = io_a.read().units, io_b.read().units
        np.testing.assert_array_equal(ua.id[:], ub.id[:])
        np.testing.assert_array_equal(ua["spike_times"].target.data[:],
                                      ub["spike_times"].target.data[:])
        np.testing.assert_array_equal(ua["spike_times"].data[:], ub["spike_times"].data[:])
        assert list(ua["quality"][:]) == list(ub["quality"][:])


def main() -> None:
    warnings.simplefilter("ignore")
    session = make_session()
    s = session.sorting
    print(f"NWB Units: {s.num_spikes:,} spikes, {s.num_units} units "
          f"(best of 3, file write included)")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        counter = iter(range(100))
        t_loop, _ = best_of(lambda: pynwb_loop(session, folder / f"a{next(counter)}.nwb"))
        t_ours, _ = best_of(lambda: spikeviz_write(session, folder / "b.nwb"))
        t_gzip, _ = best_of(lambda: spikeviz_write(session, folder / "c.nwb", "gzip"))
        check_same_content(session, folder / "a0.nwb", folder / "b.nwb")
        check_same_content(session, folder / "a0.nwb", folder / "c.nwb")
        sizes = {k: (folder / f"{k}.nwb").stat().st_size / 1e6 for k in ("a0", "b", "c")}
    row("pynwb add_unit loop + write", t_loop)
    row("spikeviz write_nwb (uncompressed)", t_ours, peer=t_loop)
    row("spikeviz write_nwb (gzip 4, default)", t_gzip, peer=t_loop)
    print(f"  file sizes: loop {sizes['a0']:.1f} MB, spikeviz {sizes['b']:.1f} MB, "
          f"gzip {sizes['c']:.1f} MB")


if __name__ == "__main__":
    main()
