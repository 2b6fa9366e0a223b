"""CuratedAnalysis: results of the curated sorting equal a from-scratch computation on
``Session(curation.sorting, recording)``, and unchanged units are never recomputed."""

import numpy as np
import pandas as pd
import pytest

from spikeviz.compute.similarity import compute_template_similarity
from spikeviz.model.curated import CuratedAnalysis, curated_analysis
from spikeviz.model.curation import Curation
from spikeviz.model.session import Session
from spikeviz.model.sorting import Sorting
from spikeviz.model.waveforms import Templates

PC = ["isolation_distance", "l_ratio", "d_prime"]
# Filtering reads a margin around each chunk of spikes; a unit alone has other chunks than
# the whole sorting, so filtered values differ by the filter's edge transient (far below 1 µV).
ATOL_UV = 0.05


def scratch(curation, rec):
    return Session(curation.sorting, recording=rec, cache_dir=None)


def rows(frame_or_templates, sorting, ids):
    return [sorting.unit_index_of(u) for u in ids]


def check_unit(a, ref, unit_id, metric_columns):
    """Every result of ``unit_id`` in CuratedAnalysis ``a`` equals the from-scratch one."""
    s = ref.sorting
    i = s.unit_index_of(unit_id)
    mine = a.templates([unit_id])
    theirs = ref.compute("templates")
    np.testing.assert_allclose(mine.data[0], theirs.data[i], atol=ATOL_UV)
    np.testing.assert_allclose(mine.std[0], theirs.std[i], atol=ATOL_UV)
    peaks = ref.compute("unit_peaks")
    assert a.peak_channel_ids([unit_id]).tolist() == [peaks["peak_channel_id"].iloc[i]]
    positions, amplitudes = a.spike_amplitudes([unit_id])
    np.testing.assert_array_equal(positions, s.spike_indices(unit_id))
    np.testing.assert_allclose(amplitudes, ref.compute("spike_amplitudes")[positions],
                               atol=ATOL_UV)
    frame = a.unit_frame()
    np.testing.assert_allclose(frame.loc[unit_id, "amplitude_uv"],
                               peaks["peak_to_peak_uv"].iloc[i], atol=ATOL_UV)
    locations = ref.compute("unit_locations")
    np.testing.assert_allclose(a.unit_locations().loc[unit_id, ["x_um", "y_um"]].to_numpy(
        dtype=float), locations.iloc[i][["x_um", "y_um"]].to_numpy(dtype=float), atol=1e-3)
    qm = ref.compute("quality_metrics", metric_names=metric_columns)
    for column in metric_columns:
        np.testing.assert_allclose(float(frame.loc[unit_id, column]), float(qm[column].iloc[i]),
                                   rtol=1e-3, atol=1e-3, err_msg=column)
    assert frame.loc[unit_id, "num_spikes"] == s.spike_counts()[unit_id]


def non_pc(session):
    return [c for c in session.compute("quality_metrics").columns if c not in PC]


def test_merge_split_remove_undo_redo_equal_a_fresh_computation(session, data):
    _, rec = data
    c = Curation(session.sorting)
    a = CuratedAnalysis(session, c)
    ids = session.sorting.unit_ids.tolist()
    a.unit_frame()  # the original results: computed once, here
    computed = list(session.analysis.computed)
    columns = non_pc(session)

    merged = c.merge([ids[0], ids[2]])
    ref = scratch(c, rec)
    check_unit(a, ref, merged, columns)
    check_unit(a, ref, ids[1], columns)  # an unchanged unit
    assert a.computed_units == [merged]
    frame = a.unit_frame()
    assert frame.loc[merged, PC].isna().all()  # population metrics: never a parent's value

    train = c.sorting.spike_indices(merged)
    first, second = c.split(merged, train[::3])
    c.remove([ids[4]])  # positions of the curated spike vector shift
    ref = scratch(c, rec)
    for u in (first, second, ids[1], ids[5]):
        check_unit(a, ref, u, columns)
    assert a.computed_units == [merged, first, second]

    assert c.undo() and c.undo()  # back to the merge
    ref = scratch(c, rec)
    check_unit(a, ref, merged, columns)
    assert c.redo() and c.redo()
    ref = scratch(c, rec)
    check_unit(a, ref, first, columns)
    assert a.computed_units == [merged, first, second]  # memoised by id, nothing redone
    assert session.analysis.computed == computed  # no original result recomputed
    assert a.unit_frame().index.tolist() == c.sorting.unit_ids.tolist()


def test_unchanged_units_share_the_session_results(session):
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    assert curated_analysis(session, c) is a
    ids = session.sorting.unit_ids.tolist()
    c.merge(ids[:2])
    original = session.compute("templates")
    mine = a.templates(ids[2:4])
    np.testing.assert_array_equal(mine.data, original.data[2:4])
    amplitudes = session.compute("spike_amplitudes")
    positions, values = a.spike_amplitudes([ids[3]])
    np.testing.assert_array_equal(values, amplitudes[positions])  # no removal: same positions
    qm = session.compute("quality_metrics")
    frame = a.unit_frame()
    pd.testing.assert_series_equal(frame.loc[ids[3], qm.columns].astype(float),
                                   qm.loc[ids[3]].astype(float), check_names=False)


def test_template_and_similarity_definitions(session, data):
    """A split in two random halves: the halves are each other's most similar unit, with an
    empty refractory window; the similarity column is the template_similarity step's."""
    _, rec = data
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    big = int(session.sorting.spike_counts().idxmax())
    train = c.sorting.spike_indices(big)
    half_a, half_b = c.split(big, train[np.random.default_rng(0).random(train.size) < 0.5])
    similar = a.similar_units(half_a, top=3)
    assert similar.index[0] == half_b
    assert similar["similarity"].iloc[0] > 0.9
    assert similar["ccg_refractory_ratio"].iloc[0] == 0  # a 2 ms dead time, as one neuron
    assert list(similar.columns) == ["similarity", "ccg_refractory_ratio",
                                     "ccg_shape_distance", "score"]
    assert (np.diff(similar["score"].to_numpy()) <= 0).all()
    ref = scratch(c, rec)
    matrix = ref.compute("template_similarity")
    np.testing.assert_allclose(similar["similarity"].to_numpy(),
                               matrix.loc[half_a, similar.index].to_numpy(), atol=1e-4)
    # the step's function on the two templates gives the same number
    t = a.templates([half_a, half_b])
    sparsity = ref.compute("sparsity")
    both = compute_template_similarity(
        t.data, sparsity[[ref.sorting.unit_index_of(u) for u in (half_a, half_b)]])
    np.testing.assert_allclose(similar.loc[half_b, "similarity"], both[0, 1], atol=1e-4)


def test_waveforms_and_features(session):
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    ids = session.sorting.unit_ids.tolist()
    merged = c.merge(ids[:2])
    snippets, channel_ids, positions = a.waveforms(merged, max_spikes=10, seed=1)
    assert snippets.shape[0] == positions.size == 10
    assert snippets.shape[2] == channel_ids.size and snippets.dtype == np.float32
    assert np.isin(positions, c.sorting.spike_indices(merged)).all()
    assert (np.diff(positions) > 0).all()
    # the snippets are the filtered traces at those spikes
    rec = session.recording
    ctx = session.analysis.bound()
    t = int(c.sorting.sample_index[positions[3]])
    nbefore = a.templates([merged]).nbefore
    window = ctx.reader()(t - nbefore, t - nbefore + snippets.shape[1])
    columns = [rec.channel_indices([ch])[0] for ch in channel_ids]
    np.testing.assert_allclose(snippets[3], window[:, columns], atol=ATOL_UV)

    positions, features, channels = a.spike_features([merged, ids[3]], n_components=2)
    expected = np.sort(np.concatenate([c.sorting.spike_indices(merged),
                                       c.sorting.spike_indices(ids[3])]))
    np.testing.assert_array_equal(positions, expected)
    assert features.shape == (expected.size, 2) and features.dtype == np.float32
    assert 1 <= channels.size <= 4
    assert abs(features.mean(axis=0)).max() < 1e-2 * abs(features).max()  # centred PCs
    c.remove([ids[4]])  # cached features, positions re-mapped to the new spike vector
    again, features2, _ = a.spike_features([merged, ids[3]], n_components=2)
    np.testing.assert_array_equal(c.sorting.sample_index[again],
                                  session.sorting.sample_index[expected])
    np.testing.assert_array_equal(features2, features)


def test_without_recording():
    rng = np.random.default_rng(3)
    n = 4000
    sorting = Sorting.from_arrays(
        np.sort(rng.choice(3_000_000, n, replace=False)), rng.integers(0, 5, n), 30000.0,
        unit_ids=[3, 5, 7, 9, 11], num_samples=3_000_000,
        spike_properties={"amplitudes": rng.gamma(5.0, 1.0, n)},
        unit_table=pd.DataFrame({"label": ["good", "mua", "good", "noise", "good"],
                                 "depth_um": [10.0, 20.0, 30.0, 40.0, 50.0]},
                                index=pd.Index([3, 5, 7, 9, 11], name="unit_id")))
    session = Session(sorting, cache_dir=None)
    c = Curation(sorting)
    a = curated_analysis(session, c)
    merged = c.merge([3, 7])
    for method, args in [("templates", ([merged],)), ("spike_amplitudes", ([merged],)),
                         ("spike_features", ([merged],)), ("waveforms", (merged,))]:
        assert getattr(a, method)(*args) is None
    frame = a.unit_frame()
    assert frame.index.tolist() == [5, 9, 11, merged]
    assert frame.loc[merged, "label"] == "good" and frame.loc[5, "label"] == "mua"
    assert frame.loc[merged, "num_spikes"] == c.sorting.spike_counts()[merged]
    np.testing.assert_allclose(frame["firing_rate_hz"], frame["num_spikes"] / 100.0)
    assert np.isnan(frame.loc[merged, "amplitude_uv"])
    assert frame.loc[9, "depth_um"] == 40.0 and np.isnan(frame.loc[merged, "depth_um"])
    ref = Session(c.sorting, cache_dir=None).compute("quality_metrics")
    for column in ref.columns:  # train metrics and amplitude_cutoff from KiloSort scalings
        np.testing.assert_allclose(frame[column].to_numpy(float),
                                   ref[column].to_numpy(float), err_msg=column)
    assert "amplitude_cutoff" in ref.columns
    counts, _ = a.correlograms([merged, 5], window_ms=20.0, bin_ms=1.0)
    assert counts.shape == (2, 2, 20)
    isi, _ = a.isi_histograms([merged], window_ms=20.0, bin_ms=1.0)
    assert isi.shape == (1, 20) and isi.sum() > 0
    rates, _ = a.firing_rates([merged], bin_s=10.0)
    np.testing.assert_allclose(rates.sum() * 10.0, frame.loc[merged, "num_spikes"])
    similar = a.similar_units(merged, top=2)  # no templates: nearest in depth, CCG only
    assert len(similar) == 0 or similar["similarity"].isna().all()


def test_kilosort_templates_give_peak_channels_without_recording():
    """Without traces, a unit's peak channel is that of the KiloSort template most of its
    spikes carry (a new unit's from its own spikes, not a parent's table value)."""
    fs = 30000.0
    sample_index = np.arange(0, 30000 * 9, 3000)  # 90 spikes
    unit_index = np.repeat([0, 1, 2], 30)
    template_index = np.repeat([0, 1, 1], 30)
    template_index[:5] = 1  # unit 0: mostly template 0
    sorting = Sorting.from_arrays(sample_index, unit_index, fs,
                                  spike_properties={"template_index": template_index})
    data = np.zeros((2, 10, 4), np.float32)
    data[0, 5, 1] = -50.0
    data[1, 5, 3] = -80.0
    ks = Templates(data, [0, 1], [10, 11, 12, 13], units="whitened")
    session = Session(sorting, channel_ids=np.array([10, 11, 12, 13]),
                      channel_locations_um=np.array([[0, 0], [0, 20], [0, 40], [0, 60.0]]),
                      results={"kilosort_templates": ks}, cache_dir=None)
    c = Curation(sorting)
    a = curated_analysis(session, c)
    merged = c.merge([0, 1])  # 25 spikes of template 0, 35 of template 1
    assert a.peak_channel_ids([2, merged]).tolist() == [13, 13]
    frame = a.unit_frame()
    assert frame.loc[merged, "depth_um"] == 60.0
    first, _ = c.split(merged, c.sorting.spike_indices(merged)[5:30])  # template 0 spikes
    assert a.peak_channel_ids([first]).tolist() == [11]
    assert a.unit_frame().loc[first, "depth_um"] == 20.0


def test_bad_ids_and_foreign_curation(session):
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    ids = session.sorting.unit_ids.tolist()
    c.merge(ids[:2])
    with pytest.raises(Exception, match="no unit"):
        a.templates([ids[0]])  # merged away
    other = Sorting.from_arrays([1, 2, 3], [0, 0, 0], 30000.0)
    with pytest.raises(Exception, match="another sorting"):
        CuratedAnalysis(session, Curation(other))


def test_split_parts_are_read_near_their_parent(session, data, monkeypatch):
    """A split part's template covers the channels within SPLIT_RADIUS_UM of its parent's
    peak channel (equal to a fresh computation there) and is 0 µV beyond."""
    from spikeviz.model import curated_units
    monkeypatch.setattr(curated_units, "SPLIT_RADIUS_UM", 30.0)
    _, rec = data
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    big = int(session.sorting.spike_counts().idxmax())
    parent_peak = session.compute("unit_peaks").loc[big, "peak_channel_index"]
    train = c.sorting.spike_indices(big)
    part, _ = c.split(big, train[::2])
    xy = rec.channel_locations_um
    near = np.linalg.norm(xy - xy[parent_peak], axis=1) <= 30.0
    assert 1 < near.sum() < near.size
    mine = a.templates([part]).data[0]
    theirs = scratch(c, rec).compute("templates")
    i = c.sorting.unit_index_of(part)
    np.testing.assert_allclose(mine[:, near], theirs.data[i][:, near], atol=ATOL_UV)
    assert not mine[:, ~near].any()


def test_merge_reads_no_trace_and_amplitude_metrics_follow(session, data, monkeypatch):
    from spikeviz.model import curated_units
    _, rec = data
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    peaks = session.compute("unit_peaks")
    first = peaks.index[0]
    other = peaks.index[peaks["peak_channel_index"] != peaks["peak_channel_index"].iloc[0]][0]

    def no_read(*args, **kwargs):
        raise AssertionError("a merged unit's template must come from its parts")

    monkeypatch.setattr(curated_units, "template", no_read)
    merged = c.merge([first, other])
    frame = a.unit_frame()  # the parts' peaks differ: some amplitudes must be read
    assert frame.loc[merged, ["amplitude_cutoff", "amplitude_median"]].isna().all()
    revision = a.revision
    a.spike_amplitudes([merged])
    assert a.revision == revision + 1
    frame = a.unit_frame()
    ref = scratch(c, rec).compute("quality_metrics", metric_names=["amplitude_median"])
    np.testing.assert_allclose(frame.loc[merged, "amplitude_median"],
                               ref.loc[merged, "amplitude_median"], atol=ATOL_UV)


# -- spike features: memoised per unit, background subsampled, PCA fitted on a sample ---------
def reference_features(session, orig_fg, orig_rows, channels, k):
    """From scratch: snippets of every foreground spike, centred SVD, projection of rows."""
    from spikeviz.model import curated_units as cu
    s = session.sorting
    fit = cu.snippets(session, s.sample_index[orig_fg], channels).reshape(orig_fg.size, -1)
    rows = cu.snippets(session, s.sample_index[orig_rows], channels).reshape(orig_rows.size, -1)
    mean = fit.astype(np.float64).mean(axis=0)
    _, _, axes = np.linalg.svd(fit - mean, full_matrices=False)
    axes = axes[:k]
    axes *= np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])[:, None]
    return (rows - mean) @ axes.T


def test_spike_features_equal_a_from_scratch_pca_and_are_memoised(session, monkeypatch):
    from spikeviz.model import curated_features as cf
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    ids = session.sorting.unit_ids.tolist()
    merged = c.merge(ids[:2])
    c.remove([ids[5]])
    fg, bg = [ids[3], merged], [ids[2], ids[4]]
    reads = []
    original = cf.read_snippets
    monkeypatch.setattr(cf, "read_snippets", lambda ctx, t, ch: reads.append(t.size) or
                        original(ctx, t, ch))
    positions, features, channel_ids = a.spike_features(
        fg, 3, background_unit_ids=bg, max_background_spikes_per_unit=40, seed=3)
    assert len(reads) == 1  # one pass over the recording
    s, kept = c.snapshot()
    fg_pos = np.sort(np.concatenate([s.spike_indices(u) for u in fg]))
    shown = np.isin(s.unit_index[positions], [s.unit_index_of(u) for u in fg])
    np.testing.assert_array_equal(positions[shown], fg_pos)  # every spike: exact lasso
    for u in bg:  # at most 40 per background unit, its own spikes
        mine = positions[s.unit_index[positions] == s.unit_index_of(u)]
        assert mine.size == min(40, s.spike_indices(u).size)
        assert np.isin(mine, s.spike_indices(u)).all()
    assert (np.diff(positions) > 0).all() and features.dtype == np.float32
    channels = session.recording.channel_indices(channel_ids)
    ref = reference_features(session, kept[fg_pos], kept[positions], channels, 3)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(features, ref, atol=1e-4 * scale)
    # a repeated call (and a call adding a background unit) reads only what is new
    reads.clear()
    again = a.spike_features(fg, 3, background_unit_ids=bg, max_background_spikes_per_unit=40,
                             seed=3)
    assert reads == []
    for x, y in zip(again, (positions, features, channel_ids), strict=True):
        np.testing.assert_array_equal(x, y)
    a.spike_features(fg, 3, background_unit_ids=[*bg, ids[6] if len(ids) > 6 else ids[2]],
                     max_background_spikes_per_unit=40, seed=3)
    assert sum(reads) <= 40
    # the two-pass path (sample for the basis, then chunks) gives the same features
    monkeypatch.setattr(cf, "MEMO_BYTES", 1)
    monkeypatch.setattr(cf, "PROJECTION_CHUNK", 7)
    a._feature_memo = cf.FeatureMemo()
    two = a.spike_features(fg, 3, background_unit_ids=bg, max_background_spikes_per_unit=40,
                           seed=3)
    np.testing.assert_array_equal(two[0], positions)
    np.testing.assert_allclose(two[1], features, atol=1e-5 * scale)


def test_spike_features_fit_on_a_sample_still_project_every_spike(session, monkeypatch):
    from spikeviz.model import curated_features as cf
    monkeypatch.setattr(cf, "FIT_SPIKES", 50)
    a = CuratedAnalysis(session, Curation(session.sorting))
    u = session.sorting.unit_ids.tolist()[1]
    positions, features, _ = a.spike_features([u], 2)
    np.testing.assert_array_equal(positions, session.sorting.spike_indices(u))
    assert np.isfinite(features).all() and features.std(axis=0).min() > 0
    with pytest.raises(Exception, match="no unit"):
        a.spike_features([], 2)


def test_spike_features_reuse_the_sessions_principal_components(session, monkeypatch):
    from spikeviz.model import curated_features as cf
    from spikeviz.model import curated_units as cu
    pcs = session.compute("principal_components", all_spikes=True)
    a = CuratedAnalysis(session, Curation(session.sorting))
    ids = session.sorting.unit_ids.tolist()
    monkeypatch.setattr(cu, "snippets", lambda *args: pytest.fail("read traces"))
    monkeypatch.setattr(cf, "read_snippets", lambda *args: pytest.fail("read traces"))
    channels = a._best_channels(ids[0], *a._snapshot())
    unit_channels = np.asarray(pcs["channel_indices"])
    fg = [u for u in ids if np.isin(channels, unit_channels[
        session.sorting.unit_index_of(u)]).all()][:2]
    assert fg and fg[0] == ids[0]
    positions, features, _ = a.spike_features(fg, 3)
    # from scratch: the session's PCs on those channels, flattened, centred SVD
    s = session.sorting
    rows = []
    for p in positions:
        unit_row = unit_channels[s.unit_index[p]]
        slots = [int(np.flatnonzero(unit_row == ch)[0]) for ch in channels]
        rows.append(np.asarray(pcs["projections"][p])[:, slots].ravel())
    rows = np.asarray(rows, np.float64)
    mean = rows.mean(axis=0)
    _, _, axes = np.linalg.svd(rows - mean, full_matrices=False)
    axes = axes[:3] * np.sign(axes[np.arange(3), np.abs(axes[:3]).argmax(axis=1)])[:, None]
    np.testing.assert_allclose(features, (rows - mean) @ axes.T,
                               atol=1e-4 * np.abs(features).max())


def test_unit_status_says_what_is_known_without_computing(session):
    c = Curation(session.sorting)
    a = curated_analysis(session, c)
    ids = session.sorting.unit_ids.tolist()
    merged = c.merge(ids[:2])
    status = a.unit_status()
    assert status.index.tolist() == c.sorting.unit_ids.tolist()
    assert status.loc[merged].tolist() == [True, False, False, False, -1]
    original = status.drop(index=merged)
    assert not original["new"].any() and original[["template", "amplitudes", "metrics"]].all(
        axis=None)
    assert (original["template_spikes_used"] == -1).all()  # session templates not computed
    a.templates([merged, ids[3]])
    status = a.unit_status([merged, ids[3]])
    assert status.index.tolist() == [merged, ids[3]]
    counts = np.asarray(session.analysis.arrays("templates")[0]["num_spikes_used"])
    assert status.loc[ids[3], "template_spikes_used"] == counts[session.sorting.unit_index_of(
        ids[3])]
    # the merge's template combines its parts': every part's snippets
    assert status.loc[merged, "template"] and status.loc[merged, "template_spikes_used"] == \
        counts[[session.sorting.unit_index_of(u) for u in ids[:2]]].sum()
    assert not status.loc[merged, "amplitudes"]
    a.spike_amplitudes([merged])
    assert a.unit_status([merged]).loc[merged, "amplitudes"]
    with pytest.raises(Exception, match="unit"):
        a.unit_status([ids[0]])  # merged away
