"""Features of a unit click: the fused snippet read equals the chunked filtered read bit for
bit; the precomputed ``feature_projections`` equal a fresh click (and so do the projections
made through the old reader, ``curated_units.snippets``): same spikes and channels, features
to float32 precision; the disk cache serves
them to a later session; background units follow the Features view's rule."""

import threading

import numpy as np
import pytest

from spikeviz.app.precompute import start_background
from spikeviz.model import curated_features as cf
from spikeviz.model import curated_units as cu
from spikeviz.model import steps_features as sf
from spikeviz.model.curated import CuratedAnalysis
from spikeviz.model.curation import Curation
from spikeviz.model.session import Session


def old_reader(session):
    """The read before the fused kernel: curated_units.snippets (filtered_reader + chunks)."""
    return lambda ctx, samples, channels: cu.snippets(session, samples, channels)


def assert_same(mine, theirs):
    """Same positions and channels; features equal to float32 precision (the PCA's BLAS may
    round differently with another memory alignment or thread count: at most an ulp or two of
    the largest feature)."""
    np.testing.assert_array_equal(mine[0], theirs[0])
    np.testing.assert_array_equal(mine[2], theirs[2])
    assert mine[1].dtype == theirs[1].dtype == np.float32
    scale = float(np.abs(theirs[1]).max())
    np.testing.assert_allclose(mine[1], theirs[1], rtol=0,
                               atol=2 * np.finfo(np.float32).eps * scale)


def click(session, unit_id, monkeypatch=None, reader=None):
    """A fresh Features click on ``unit_id`` with the view's defaults (its background)."""
    a = CuratedAnalysis(session, Curation(session.sorting))
    ids = session.sorting.unit_ids.tolist()
    xy = a.unit_locations()[["x_um", "y_um"]].to_numpy(dtype=float)
    background = sf.nearest_units(ids, xy, unit_id, sf.DEFAULTS["background_units"])
    cap = sf.background_cap(len(background), sf.DEFAULTS["max_background_spikes"])
    if reader is not None:
        monkeypatch.setattr(cf, "read_snippets", reader)
    try:
        return a.spike_features([unit_id], sf.DEFAULTS["n_components"],
                                background_unit_ids=background,
                                max_background_spikes_per_unit=cap, seed=sf.DEFAULTS["seed"])
    finally:
        if reader is not None:
            monkeypatch.undo()


@pytest.mark.parametrize("band", ["auto", None, (300.0, None)])
def test_fused_read_equals_the_chunked_filtered_read_bit_for_bit(data, band):
    sorting, rec = data
    session = Session(sorting, recording=rec, cache_dir=None, filter_band_hz=band)
    ctx = session.analysis.bound()
    n = rec.num_samples
    # spikes at both ends (zero padded, windows clipped), isolated ones, dense bursts
    samples = np.sort(np.concatenate([
        [0, 3, 40, n - 60, n - 2, n - 1], sorting.sample_index[::7],
        np.arange(100_000, 100_050)])).astype(np.int64)
    for channels in ([0, 1, 2, 3], [15], [2, 7, 9, 11]):
        channels = np.asarray(channels)
        new = cf.read_snippets(ctx, samples, channels)
        old = cu.snippets(session, samples, channels)
        assert new.dtype == np.float32 and new.shape == old.shape
        np.testing.assert_array_equal(new, old)
        assert np.abs(new).max() > 10  # real spikes were read
    assert cf.read_snippets(ctx, np.zeros(0, np.int64), np.arange(4)).shape[0] == 0


def test_precomputed_features_equal_a_fresh_click(session, monkeypatch):
    ids = session.sorting.unit_ids.tolist()
    fresh = {u: click(session, u) for u in ids}
    # the projections through the old reader are the same numbers
    for u in ids[:2]:
        assert_same(click(session, u, monkeypatch, old_reader(session)), fresh[u])
    session.compute(sf.NAME)
    monkeypatch.setattr(cf, "read_snippets", lambda *a: pytest.fail("read traces"))
    for u in ids:
        stored = click(session, u)
        assert_same(stored, fresh[u])
        s = session.sorting
        shown = s.unit_index[stored[0]] == s.unit_index_of(u)
        np.testing.assert_array_equal(stored[0][shown], s.spike_indices(u))  # every spike


def test_another_request_is_computed_and_the_store_is_not_trusted_blindly(session, monkeypatch):
    ids = session.sorting.unit_ids.tolist()
    session.compute(sf.NAME)
    reads = []
    original = cf.read_snippets
    monkeypatch.setattr(cf, "read_snippets",
                        lambda ctx, t, ch: reads.append(t.size) or original(ctx, t, ch))
    a = CuratedAnalysis(session, Curation(session.sorting))
    # two components: another basis key, computed (and equal to a fresh computation)
    two = a.spike_features([ids[0]], 2)
    assert reads
    b = CuratedAnalysis(Session(session.sorting, recording=session.recording, cache_dir=None),
                        Curation(session.sorting))
    assert_same(two, b.spike_features([ids[0]], 2))
    # the stored unit with another background unit: only that unit's sample is read
    reads.clear()
    other = [u for u in ids[1:]][-1]
    a.spike_features([ids[0]], 3, background_unit_ids=[other], max_background_spikes_per_unit=50)
    assert sum(reads) == min(50, session.sorting.spike_indices(other).size)
    # a store whose arrays were changed behind its back: a changed filter is another key
    session.filter_band_hz = (500.0, 5000.0)
    assert sf.load_store(session) is None


def test_store_is_read_from_the_disk_cache_by_a_later_session(data, tmp_path, monkeypatch):
    sorting, rec = data
    first = Session(sorting, recording=rec, cache_dir=tmp_path)
    first.compute(sf.NAME)
    assert sf.NAME in first.analysis.cache.writes
    later = Session(sorting, recording=rec, cache_dir=tmp_path)
    monkeypatch.setattr(cf, "read_snippets", lambda *a: pytest.fail("read traces"))
    u = sorting.unit_ids.tolist()[2]
    positions, features, _ = click(later, u)
    assert sf.NAME in later.analysis.cache.hits
    assert features.shape == (positions.size, 3) and np.isfinite(features).all()


def test_background_thread_stores_the_result(data, tmp_path):
    sorting, rec = data
    session = Session(sorting, recording=rec, cache_dir=tmp_path)
    done = threading.Event()
    thread = start_background(session, on_done=lambda error: done.set())
    assert thread is not None
    thread.join(timeout=300)
    assert done.is_set() and sf.load_store(session) is not None
    assert start_background(session) is None  # nothing left to do
    assert start_background(Session(sorting, cache_dir=None)) is None  # no recording


def test_defaults_and_background_rule_are_the_features_views(session):
    from spikeviz.views.features import Features

    view = Features(session)
    for name, value in sf.DEFAULTS.items():
        assert getattr(view, name) == value, name
    ids = session.sorting.unit_ids.tolist()
    xy = session.compute("unit_locations")[["x_um", "y_um"]].to_numpy(dtype=float).copy()
    for u in ids:
        assert view.neighbours([u], 3) == sf.nearest_units(ids, xy, u, 3)
    assert sf.background_cap(3, 20_000) == 2000 and sf.background_cap(0, 900) == 900
    # unknown locations are never neighbours
    xy[1] = np.nan
    assert ids[1] not in sf.nearest_units(ids, xy, ids[0], 5)
    assert sf.nearest_units(ids, xy, ids[1], 3) == []
