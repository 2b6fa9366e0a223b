"""What the browser tests check in the files the export panel wrote, with the field's own
readers as the references: SpikeInterface (curation JSON), phylib (Phy folder), pynwb and
nwbinspector (NWB), and numpy on the original Phy folder's spike times.

``shown`` is what the unit table showed: ``{unit id: (label, spike count)}``.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np


def original_trains(folder: Path) -> dict[int, np.ndarray]:
    """Spike sample indices of every cluster of the original Phy folder, read with numpy."""
    times = np.load(folder / "spike_times.npy").ravel().astype(np.int64)
    clusters = np.load(folder / "spike_clusters.npy").ravel().astype(np.int64)
    return {int(c): np.sort(times[clusters == c]) for c in np.unique(clusters)}


def _tsv(path: Path) -> dict:
    """{cluster id: value} of a two-column Phy table (``cluster_id<TAB>name``)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows and rows[0][0] == "cluster_id", rows[:1]
    return {int(r[0]): r[1] for r in rows[1:]}


def check_curation_json(document, folder: Path, sampling_frequency: float, shown: dict,
                        tags: dict | None = None):
    """A valid SpikeInterface curation (one v2 dict or a list of sequential steps) that turns
    the original folder's sorting into the shown units (spike counts); ``tags``
    ``{unit: [tag, ...]}`` are listed in its manual labels and become SpikeInterface's boolean
    unit properties (true for those units only). The curated SpikeInterface sorting."""
    import spikeinterface.core as si
    from spikeinterface.curation import apply_curation, validate_curation_dict

    steps = document if isinstance(document, list) else [document]
    for step in steps:
        validate_curation_dict(step)
    trains = original_trains(folder)
    samples = np.concatenate(list(trains.values()))
    labels = np.concatenate([np.full(t.size, c) for c, t in trains.items()])
    original = si.NumpySorting.from_samples_and_labels([samples], [labels], sampling_frequency)
    curated = apply_curation(original, document)
    assert curated.get_num_units() == len(shown)
    assert sorted(curated.count_num_spikes_per_unit().values()) == \
        sorted(spikes for _, spikes in shown.values())
    for unit, unit_tags in (tags or {}).items():
        listed = [set(entry["labels"].get("tags", [])) for step in steps
                  for entry in step.get("manual_labels", []) if entry["unit_id"] == unit]
        assert set(unit_tags) in listed, (unit, steps[-1].get("manual_labels"))
        for tag in unit_tags:
            flags = dict(zip(curated.unit_ids, curated.get_property(tag), strict=True))
            assert flags[unit] and sum(bool(v) for v in flags.values()) == 1, (tag, flags)
    return curated


def check_phy_folder(phy: Path, folder: Path, sampling_frequency: float, shown: dict,
                     num_original: int, origins=()) -> None:
    """The exported Phy folder, opened by phylib's ``load_model`` (TemplateModel) and by
    ``spikeviz.load``: the shown cluster ids, spike counts and labels (``cluster_group.tsv``,
    and ``cluster_info.tsv`` when written); spike trains of unchanged original units (ids below
    ``num_original``) identical to the original folder's; the new units together hold exactly
    the spikes of the original units ``origins``."""
    assert phy.is_dir() and (phy / "params.py").is_file(), phy
    groups = _tsv(phy / "cluster_group.tsv")
    assert set(groups) <= set(shown)
    for unit, (label, _) in shown.items():
        assert groups.get(unit, "unsorted") == label, (unit, groups.get(unit), label)
    if (phy / "cluster_info.tsv").is_file():  # phy's own summary, when written
        with open(phy / "cluster_info.tsv", newline="") as f:
            info = {int(r["cluster_id"]): r for r in csv.DictReader(f, delimiter="\t")}
        for unit, (label, _) in shown.items():
            assert info[unit].get("group", label) == label, unit

    from phylib.io.model import load_model

    trains = original_trains(folder)
    model = load_model(phy / "params.py")
    try:
        clusters = np.asarray(model.spike_clusters)
        spike_samples = np.asarray(model.spike_samples).astype(np.int64)
        ids, counts = np.unique(clusters, return_counts=True)
        assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == \
            {u: spikes for u, (_, spikes) in shown.items()}
        phy_groups = model.metadata.get("group", {})
        for unit, (label, _) in shown.items():
            assert phy_groups.get(unit, "unsorted") == label, unit
        assert model.sample_rate == sampling_frequency
        exported = {u: np.sort(spike_samples[clusters == u]) for u in shown}
        for unit in shown:
            if unit < num_original:
                np.testing.assert_array_equal(exported[unit], trains[unit], err_msg=str(unit))
        if origins:
            new = [u for u in shown if u >= num_original]
            np.testing.assert_array_equal(
                np.sort(np.concatenate([exported[u] for u in new])),
                np.sort(np.concatenate([trains[u] for u in origins])))
    finally:
        close = getattr(model, "close", None)
        if close is not None:
            close()

    import spikeviz

    sorting = spikeviz.load(phy).sorting
    assert set(sorting.unit_ids.tolist()) == set(shown)
    loaded_labels = sorting.labels
    for unit, (label, spikes) in shown.items():
        assert sorting.spike_indices(unit).size == spikes, unit
        assert loaded_labels[unit] == label, unit


def check_nwb_file(path: Path, folder: Path, sampling_frequency: float, shown: dict,
                   num_original: int, subject: dict, start: dt.datetime,
                   location: str) -> list:
    """No CRITICAL nwbinspector message (and none about the electrodes' location); pynwb
    reads the subject, the start time, the electrode groups' location and the units: ids,
    spike counts, ``quality`` labels, spike times of unchanged original units equal to the
    original folder's samples. The inspector's messages, as (importance, check) pairs."""
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import NWBHDF5IO

    found = list(inspect_nwbfile(nwbfile_path=str(path)))
    critical = [m for m in found if m.importance == Importance.CRITICAL]
    assert not critical, [(m.check_function_name, m.message) for m in critical]
    assert not [m for m in found if "location" in m.check_function_name], found

    trains = original_trains(folder)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        for key, value in subject.items():
            assert getattr(nwb.subject, key) == value, key
        assert nwb.session_start_time == start
        assert {g.location for g in nwb.electrode_groups.values()} == {location}
        units = nwb.units
        ids = [int(i) for i in units.id[:]]
        assert set(ids) == set(shown)
        quality = units["quality"][:]
        for row, unit in enumerate(ids):
            times_s = np.asarray(units["spike_times"][row])
            label, spikes = shown[unit]
            assert times_s.size == spikes, unit
            assert quality[row] == label, unit
            if unit < num_original:  # unchanged original units: the same samples
                np.testing.assert_array_equal(
                    np.round(times_s * sampling_frequency).astype(np.int64), trains[unit],
                    err_msg=str(unit))
    return sorted({(m.importance.name, m.check_function_name) for m in found})
