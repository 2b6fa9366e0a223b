"""The export panel (no browser): every export of a curated synthetic session (merge + labels),
read back with the field's own readers (pynwb + nwbinspector, phylib, SpikeInterface's curation
validator, pandas, spikeviz.load), the background path, bad metadata and failing jobs."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
import zoneinfo

import numpy as np
import pandas as pd
import panel as pn
import pytest

import spikeviz as sv
from spikeviz.app import export_jobs as jobs
from spikeviz.app.export_panel import ExportPanel
from spikeviz.datasets import generate_to_folder
from spikeviz.errors import InputError
from spikeviz.model.curated import curated_analysis
from spikeviz.model.curation import Curation

FS = 30_000.0
FORM = {"subject_id": "mouse-7", "species": "Mus musculus", "sex": "F", "age": "P90D",
        "session_start_time": "2024-05-01T10:00:00+02:00",
        "session_description": "Curated units of a synthetic probe recording.",
        "experimenter": "Doe, Jane; Roe, Richard", "institution": "Example Institute",
        "lab": "Example Lab", "location": "VISp"}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = generate_to_folder(tmp_path_factory.mktemp("src") / "ks", duration_s=3.0,
                                num_channels=16, num_units=5, seed=4)
    return sv.load(folder)


@pytest.fixture
def curation(session):
    cur = Curation(session.sorting)
    ids = session.sorting.unit_ids
    merged = cur.merge([ids[0], ids[1]])
    cur.label(merged, "mua")
    cur.label(ids[2], "noise")
    cur.label(ids[3], "good")
    return cur


@pytest.fixture
def panel(session, curation, tmp_path):
    return ExportPanel(session, curation, output_dir=tmp_path / "exports")


def trains(sorting):
    return {int(u): sorting.spike_train(u).tolist() for u in sorting.unit_ids}


def files(folder):
    return sorted(p.name for p in folder.iterdir())


def expected_trains(session, curation):
    """The curated trains recomputed from the original sorting (merge = sorted union)."""
    s = session.sorting
    ids = s.unit_ids
    out = {int(u): s.spike_train(u).tolist() for u in ids[2:]}
    merged = next(u for u in curation.sorting.unit_ids if u not in ids)
    out[int(merged)] = sorted(s.spike_train(ids[0]).tolist() + s.spike_train(ids[1]).tolist())
    return out


# -- what is exported ------------------------------------------------------------------------
def test_curated_session_shares_the_originals_facts(session, curation):
    curated = jobs.curated_session(session, curation)
    assert curated.sorting is curation.sorting
    assert curated.recording is session.recording
    np.testing.assert_array_equal(curated.channel_ids, session.channel_ids)
    np.testing.assert_array_equal(curated.channel_locations_um, session.channel_locations_um)
    assert curated.format == session.format and curated.source == session.source
    assert trains(curated.sorting) == expected_trains(session, curation)
    labels = curated.sorting.unit_table["label"]
    assert labels[session.sorting.unit_ids[2]] == "noise"


def test_default_output_dir_and_unique_names(session, curation, tmp_path):
    folder = jobs.default_output_dir(session)
    assert folder.name == "exports" and folder.parent == session.analysis.cache.folder
    memory = sv.Session(session.sorting)  # no source, no cache folder: a temporary folder
    assert jobs.default_output_dir(memory).is_dir()
    p = ExportPanel(session, curation, output_dir=tmp_path)
    first = p.run_job("curation").path
    second = p.run_job("curation").path
    assert (first.name, second.name) == ("ks_curation.json", "ks_curation_2.json")
    assert first.read_text() == second.read_text()  # nothing overwritten, same content


# -- each format, read back ------------------------------------------------------------------
def test_nwb_read_back_with_pynwb_and_nwbinspector(panel, session, curation):
    pynwb = pytest.importorskip("pynwb")
    nwbinspector = pytest.importorskip("nwbinspector")
    steps = []
    result = panel.run_job("nwb", {"metadata": FORM},
                           progress=lambda step, f: steps.append((step, f)))
    assert result.path == panel.output_dir / "ks_curated.nwb" and result.download == result.path
    assert steps[-1] == ("done", 1.0)
    sorting = curation.sorting
    with pynwb.NWBHDF5IO(str(result.path), "r") as io:
        nwb = io.read()
        units = nwb.units
        np.testing.assert_array_equal(units.id[:], sorting.unit_ids)
        assert list(units["quality"][:]) == sorting.labels.tolist()
        got = {int(u): np.round(np.asarray(units.get_unit_spike_times(i)) * FS).astype(
            np.int64).tolist() for i, u in enumerate(units.id[:])}
        assert got == expected_trains(session, curation)
        assert nwb.subject.subject_id == "mouse-7" and nwb.subject.species == "Mus musculus"
        assert nwb.subject.sex == "F" and nwb.subject.age == "P90D"
        assert nwb.session_start_time == dt.datetime.fromisoformat(FORM["session_start_time"])
        assert list(nwb.experimenter) == ["Doe, Jane", "Roe, Richard"]
        assert nwb.institution == "Example Institute" and nwb.lab == "Example Lab"
        assert nwb.session_description == FORM["session_description"]
        assert {g.location for g in nwb.electrode_groups.values()} == {"VISp"}
    messages = list(nwbinspector.inspect_nwbfile(nwbfile_path=str(result.path),
                                                 config=nwbinspector.load_config("dandi")))
    serious = [(m.check_function_name, m.message) for m in messages
               if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR",
                                        "PYNWB_VALIDATION")]
    assert serious == []
    assert not any("location" in w for w in result.warnings)


@pytest.mark.parametrize("style, unit", [("ragged", "s"), ("paired", "samples")])
def test_hdf5_read_back_with_spikeviz(panel, session, curation, style, unit):
    result = panel.run_job("hdf5", {"style": style, "time_unit": unit})
    assert result.path.suffix == ".h5"
    back = sv.load(result.path, sampling_frequency=FS)
    got = {int(u): back.sorting.spike_train(u).tolist() for u in back.sorting.unit_ids}
    assert got == expected_trains(session, curation)


def test_phy_folder_read_with_phylib_and_zipped(panel, session, curation):
    phylib_model = pytest.importorskip("phylib.io.model")
    result = panel.run_job("phy")
    folder, archive = result.path, result.download
    assert folder.is_dir() and archive == folder.with_name(folder.name + ".zip")
    model = phylib_model.load_model(folder / "params.py")
    try:
        got = {int(c): model.spike_samples[model.spike_clusters == c].tolist()
               for c in model.cluster_ids}
        assert got == expected_trains(session, curation)
        for u, label in curation.sorting.labels.items():
            assert model.metadata["group"][int(u)] == label
    finally:
        model.close()
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        inside = {f"{folder.name}/{p.relative_to(folder)}" for p in folder.rglob("*")
                  if p.is_file()}
        assert names == inside
        assert z.read(f"{folder.name}/spike_clusters.npy") == \
            (folder / "spike_clusters.npy").read_bytes()


def test_curation_json_is_valid_spikeinterface_v2(panel, session, curation):
    si_curation = pytest.importorskip("spikeinterface.curation")
    result = panel.run_job("curation")
    document = json.loads(result.path.read_text())
    steps = document if isinstance(document, list) else [document]
    for step in steps:
        si_curation.validate_curation_dict(step)
    applied = si_curation.apply_curation(sv.to_spikeinterface(session.sorting), document)
    got = sorted(sorted(applied.get_unit_spike_train(u).tolist())
                 for u in applied.unit_ids)
    assert got == sorted(expected_trains(session, curation).values())


def test_metrics_csv_equals_the_unit_frame(panel, session, curation):
    result = panel.run_job("metrics_csv")
    back = pd.read_csv(result.path, index_col="unit_id", keep_default_na=False,
                       na_values=[""])
    frame = jobs.unit_frame(session, curation)
    assert back.index.tolist() == curation.sorting.unit_ids.tolist()
    assert back.columns.tolist() == frame.columns.tolist()
    assert back["label"].tolist() == curation.sorting.labels.tolist()
    counts = {u: len(t) for u, t in expected_trains(session, curation).items()}
    assert back["num_spikes"].to_dict() == counts
    for column in frame.columns:
        expected = frame[column]
        if pd.api.types.is_numeric_dtype(expected):
            np.testing.assert_allclose(back[column].to_numpy(float),
                                       expected.to_numpy(float), equal_nan=True)
        else:
            assert back[column].astype(object).fillna("").astype(str).tolist() == \
                expected.astype(object).fillna("").astype(str).tolist(), column


def test_an_export_after_a_merge_computes_only_the_new_units_results(session, curation):
    pynwb = pytest.importorskip("pynwb")
    h5py = pytest.importorskip("h5py")
    for name in ("quality_metrics", "unit_peaks", "unit_locations", "spike_amplitudes"):
        session.compute(name)  # what the dashboard has computed for the session
    cache = session.analysis.cache.folder
    before, computed = set(cache.iterdir()), list(session.analysis.computed)
    ca = curated_analysis(session, curation)
    merged = next(u for u in curation.sorting.unit_ids if u not in session.sorting.unit_ids)
    p = ExportPanel(session, curation)  # default folder: .spikeviz/exports
    nwb = p.run_job("nwb", {"metadata": FORM})
    h5 = p.run_job("hdf5")
    phy = p.run_job("phy")
    assert ca.computed_units == [merged]  # the merged unit's results only, once
    assert session.analysis.computed == computed  # nothing of the session recomputed
    curated = p._curated()
    assert curated.analysis.cache.folder is None
    assert set(curated.analysis.computed) <= {"unit_peaks"}  # from the seeded templates
    assert set(cache.iterdir()) - before <= {cache / "exports"}  # no second cache
    assert {nwb.path.parent, h5.path.parent, phy.path.parent} == {cache / "exports"}
    ids = curation.sorting.unit_ids
    expected = ca.templates(ids)
    frame = ca.unit_frame()
    row = ids.tolist().index(merged)
    with pynwb.NWBHDF5IO(str(nwb.path), "r") as io:
        units = io.read().units
        assert list(units.id[:]) == ids.tolist()
        np.testing.assert_allclose(np.asarray(units["waveform_mean"][row]) * 1e6,
                                   expected.data[row], atol=1e-3)
        np.testing.assert_allclose(np.asarray(units["waveform_sd"][row]) * 1e6,
                                   expected.std[row], atol=1e-3)
        for column in ("snr", "num_spikes", "firing_range", "amplitude_median"):
            np.testing.assert_allclose(units[column][:], frame[column].to_numpy(float),
                                       equal_nan=True, err_msg=column)
    with h5py.File(h5.path, "r") as f:
        for column in ("snr", "presence_ratio", "amplitude_cutoff", "isolation_distance"):
            np.testing.assert_allclose(f["unit_table"][column][:],
                                       frame[column].to_numpy(float), equal_nan=True)
    assert np.isfinite(frame.loc[merged, "amplitude_median"])  # computed for the export
    assert np.isnan(frame.loc[merged, "isolation_distance"])  # no PCA of a new unit
    assert not (phy.path / "pc_features.npy").exists()
    assert any("pc_features.npy" in w for w in phy.warnings)
    again = p.run_job("nwb", {"metadata": FORM})  # the next export reuses everything
    assert ca.computed_units == [merged] and session.analysis.computed == computed
    assert again.path != nwb.path


def test_without_compute_only_known_results_are_written(session, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    cur = Curation(session.sorting)
    ids = session.sorting.unit_ids
    merged = cur.merge([ids[3], ids[4]])
    ca = curated_analysis(session, cur)
    p = ExportPanel(session, cur, output_dir=tmp_path)
    result = p.run_job("nwb", {"metadata": FORM, "compute": False})
    assert ca.computed_units == []  # nothing computed for the merged unit
    assert any("not computed yet" in w for w in result.warnings)
    with pynwb.NWBHDF5IO(str(result.path), "r") as io:
        assert "waveform_mean" not in io.read().units.colnames
    ca.unit_frame()  # the dashboard shows the merged unit: its template becomes known
    assert ca.computed_units == [merged]
    p._curated_memo = None
    result = p.run_job("nwb", {"metadata": FORM, "compute": False})
    with pynwb.NWBHDF5IO(str(result.path), "r") as io:
        units = io.read().units
        assert "waveform_mean" in units.colnames and "snr" in units.colnames
    assert ca.computed_units == [merged]


def test_labels_only_keep_the_sessions_principal_components(session, tmp_path):
    session.compute("principal_components", all_spikes=True)
    cur = Curation(session.sorting)
    cur.label(session.sorting.unit_ids[0], "good")
    result = ExportPanel(session, cur, output_dir=tmp_path).run_job("phy")
    features = np.load(result.path / "pc_features.npy")
    assert features.shape[0] == session.sorting.num_spikes
    assert not any("pc_features" in w for w in result.warnings)


def test_parquet_only_with_an_engine(panel, curation):
    if jobs.parquet_engine() is None:
        assert panel._parquet_button.disabled
        with pytest.raises(InputError, match="pyarrow or fastparquet"):
            panel.run_job("metrics_parquet")
        assert files(panel.output_dir) == []
    else:
        result = panel.run_job("metrics_parquet")
        assert pd.read_parquet(result.path).index.tolist() == \
            curation.sorting.unit_ids.tolist()


def test_views_as_html_and_png(session, curation, tmp_path):
    hv = pytest.importorskip("holoviews")
    hv.extension("bokeh")
    views = {"amplitudes view": hv.Curve([1, 3, 2]),
             "layout": pn.Column(pn.pane.Markdown("# probe"), hv.Scatter([(0, 1), (1, 2)]))}
    p = ExportPanel(session, curation, views=views, output_dir=tmp_path)
    assert p.view_select.options == list(views)
    html = p.run_job("view_html", {"view": "amplitudes view"})
    assert html.path.name == "ks_amplitudes_view.html"
    text = html.path.read_text()
    assert "Bokeh" in text and "cdn.bokeh.org/bokeh/release" not in text  # BokehJS inlined
    with pytest.raises(InputError, match="no view named"):
        p.run_job("view_html", {"view": "nope"})
    if not jobs.png_available():
        assert p._view_buttons[0].disabled
        pytest.skip("no Chromium/Playwright: PNG export disabled")
    png = p.run_job("view_png", {"view": "layout"})
    data = png.path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def svg_elements(text):
    import xml.etree.ElementTree as ET

    root = ET.fromstring(text)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return {element.tag.rsplit("}", 1)[-1] for element in root.iter()}


def test_views_as_svg(session, curation, tmp_path):
    hv = pytest.importorskip("holoviews")
    hv.extension("bokeh")
    views = {"curve": hv.Curve([1, 3, 2]),
             "layout": pn.Column(pn.pane.Markdown("# probe"), hv.Scatter([(0, 1), (1, 2)]),
                                 hv.Image(np.arange(12.0).reshape(3, 4))),
             "text": pn.pane.Markdown("no plot")}
    p = ExportPanel(session, curation, views=views, output_dir=tmp_path)
    if not jobs.png_available():
        assert p._view_buttons[2].disabled
        pytest.skip("no Chromium/Playwright: SVG export disabled")
    assert not p._view_buttons[2].disabled
    one = p.run_job("view_svg", {"view": "curve"})
    assert one.path.name == "ks_curve.svg" and one.download == one.path
    assert "path" in svg_elements(one.path.read_text())
    several = p.run_job("view_svg", {"view": "layout"})
    assert several.path.is_dir() and several.download.suffix == ".zip"
    names = sorted(f.name for f in several.path.iterdir())
    assert names == ["plot_1.svg", "plot_2.svg"]
    tags = [svg_elements((several.path / n).read_text()) for n in names]
    assert "path" in tags[0] and "image" in tags[1]  # the raster is embedded as an image
    with zipfile.ZipFile(several.download) as z:
        assert sorted(z.namelist()) == [f"ks_layout_svg/{n}" for n in names]
    with pytest.raises(InputError, match="no Bokeh plot"):
        p.run_job("view_svg", {"view": "text"})
    assert sorted(f.name for f in tmp_path.iterdir()) == \
        ["ks_curve.svg", "ks_layout_svg", "ks_layout_svg.zip"]


# -- the panel: form, background, failures --------------------------------------------------
def fill_form(p, **values):
    for key, value in {**FORM, **values}.items():
        if key == "session_start_time":
            start = dt.datetime.fromisoformat(value)
            p.form[key].value = start.replace(tzinfo=None)
            p.form["timezone"].value = "Europe/Paris"
        else:
            p.form[key].value = value


def test_form_values_are_timezone_aware(panel):
    fill_form(panel)
    values = panel.form_values()
    assert values["session_start_time"] == dt.datetime(
        2024, 5, 1, 10, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    panel.form["timezone"].value = ""
    with pytest.raises(InputError, match="timezone"):
        panel.form_values()


def test_bad_metadata_is_shown_next_to_the_form_and_writes_nothing(panel):
    fill_form(panel, sex="male")
    assert panel.start_nwb() is None
    assert panel.form_error.visible and "Subject.sex" in panel.form_error.object
    assert "M male" in panel.form_error.object
    assert panel.status == "idle" and files(panel.output_dir) == []
    with pytest.raises(InputError, match=r"Subject\.sex"):
        panel.run_job("nwb", {"metadata": {**FORM, "sex": "male"}})
    assert files(panel.output_dir) == []


def test_background_nwb_job_reaches_done_with_a_download(panel, curation):
    fill_form(panel)
    seen = []
    panel.param.watch(lambda e: seen.append(e.new), ["fraction"])
    thread = panel.start_nwb()
    assert thread is not None and panel.status in ("running", "done")
    assert panel.start("curation") is None or not thread.is_alive()  # one job at a time
    assert panel.wait(300)
    assert panel.status == "done", panel.message
    assert panel.fraction == 1.0 and seen[-1] == 1.0 and panel.progress.value == 100
    path = panel.result.path
    assert path.is_file() and path.parent == panel.output_dir
    assert panel.download.visible and panel.download.file == str(path)
    assert panel.download.filename == path.name
    assert str(path) in panel.path_text.object
    idle = [b for b in panel._buttons
            if b is not panel._parquet_button and b not in panel._view_buttons]  # no views
    assert idle and not any(b.disabled for b in idle)


def test_large_files_are_not_offered_for_download(panel, monkeypatch):
    from spikeviz.app import export_panel

    panel.start("curation")
    assert panel.wait(60) and panel.status == "done"
    size = panel.result.download.stat().st_size
    assert panel.download.visible and panel.download.file == str(panel.result.download)
    monkeypatch.setattr(export_panel, "MAX_DOWNLOAD_BYTES", size - 1)
    panel.start("curation")
    assert panel.wait(60) and panel.status == "done"
    assert not panel.download.visible and panel.download.file is None
    text = panel.path_text.object
    assert panel.path_text.visible and str(panel.result.path) in text
    assert "too large to download" in text
    monkeypatch.setattr(export_panel, "MAX_DOWNLOAD_BYTES", size)  # at the limit: offered
    panel.start("curation")
    assert panel.wait(60) and panel.download.visible
    assert panel.download.file == str(panel.result.download)


@pytest.mark.parametrize("kind", ["nwb", "phy", "hdf5"])
def test_a_failing_job_shows_one_line_and_leaves_no_file(panel, kind, monkeypatch, caplog):
    def fail(step, fraction):
        if fraction >= 0.5:
            raise RuntimeError("disk on fire\nsecond line")
    monkeypatch.setattr(panel, "_on_progress", fail)
    options = {"metadata": FORM} if kind == "nwb" else {}
    panel.start(kind, options)
    assert panel.wait(300)
    assert panel.status == "error"
    assert "\n" not in panel.message and "RuntimeError: disk on fire second line" in \
        panel.message
    assert "Traceback" not in panel.message
    assert any(r.exc_info for r in caplog.records)  # the traceback goes to the server log
    assert files(panel.output_dir) == []  # no file, no folder, no zip, no temporary


def test_an_input_error_is_shown_as_its_text(panel):
    panel.start("view_html", {"view": "missing"})
    assert panel.wait(60)
    assert panel.status == "error"
    assert panel.message.startswith("Export failed: field 'view': no view named 'missing'")
