"""Filtered / re-referenced Traces frames from cached chunks (spikeviz.views.traces_data),
against scipy's sosfiltfilt and numpy's median on the same input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

import spikeviz as sv
from spikeviz.compute.signal import butter_sos, minmax_envelope
from spikeviz.views.traces_data import (
    CHUNK_S,
    ChunkCache,
    channel_order,
    make_frame,
    processed_envelope,
    processed_window,
)

FS = 30000.0
N_CH = 40
CHUNK = round(CHUNK_S * FS)
MARGIN = 500  # 5 periods of 300 Hz


def _recording(seconds=3.2, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    x = rng.normal(0, 20, (n, N_CH)) + 300 * np.sin(2 * np.pi * 6 * t)[:, None]
    x += 80 * np.sin(2 * np.pi * 1200 * t)[:, None] + rng.integers(-500, 500, N_CH)
    x[rng.integers(0, n, 300), rng.integers(0, N_CH, 300)] -= 600
    raw = np.round(x).astype(np.int16)
    locations = np.column_stack([np.tile([0.0, 32.0], N_CH // 2),
                                 np.repeat(np.arange(N_CH // 2) * 20.0, 2)])
    gains = np.linspace(0.19, 0.2, N_CH)
    offsets = np.linspace(-10.0, 10.0, N_CH)
    rec = sv.Recording(raw, FS, channel_locations_um=locations, gains_to_uv=gains,
                       offsets_to_uv=offsets)
    return rec, raw, gains, offsets


def _chunked_reference(raw, gains, offsets, sos, start, end, chunk=CHUNK, margin=MARGIN):
    """scipy's sosfiltfilt of every chunk read with its 5-period margin, then the window."""
    n = raw.shape[0]
    out = []
    for j in range(start // chunk, (end - 1) // chunk + 1):
        c0, c1 = j * chunk, min((j + 1) * chunk, n)
        lo, hi = max(c0 - margin, 0), min(c1 + margin, n)
        filtered = signal.sosfiltfilt(sos, raw[lo:hi] * gains + offsets, axis=0)[c0 - lo:c1 - lo]
        a, b = max(start, c0), min(end, c1)
        out.append(filtered[a - c0:b - c0])
    return np.concatenate(out)


@pytest.mark.parametrize("filter_name", ["bandpass", "highpass"])
def test_filtered_frame_is_the_envelope_of_scipy_on_each_chunk_with_its_margin(filter_name):
    rec, raw, gains, offsets = _recording()
    band = (300.0, 6000.0) if filter_name == "bandpass" else (300.0, None)
    sos = butter_sos(FS, band)
    ids = channel_order(rec)
    columns = rec.channel_indices(ids)
    for start, end, n_columns in [(20000, 50000, 700), (0, 96000, 1920), (61234, 61300, 66)]:
        frame = make_frame(rec, start, end, ids, n_columns, 200, filter_name, cache=None)
        ref = _chunked_reference(raw, gains, offsets, sos, start, end)[:, columns]
        ref_min, ref_max, edges = minmax_envelope(ref, n_columns)
        assert np.array_equal(frame.edges, edges)
        assert np.abs(frame.mins_uv - ref_min).max() < 1e-3
        assert np.abs(frame.maxs_uv - ref_max).max() < 1e-3
    # and the chunks' margins make it the filter of the whole recording, to display precision
    whole = signal.sosfiltfilt(sos, raw * gains + offsets, axis=0)[20000:50000][:, columns]
    frame = make_frame(rec, 20000, 50000, ids, 30000, 200, filter_name, cache=None)
    assert np.abs(frame.mins_uv - whole).max() < 0.01  # measured 1.2e-3 µV


def test_a_sample_has_the_same_value_in_every_window():
    rec, *_ = _recording()
    cache = ChunkCache()
    wide, _, _ = processed_window(rec, 10000, 80000, "bandpass", cache=cache)
    narrow, _, _ = processed_window(rec, 29000, 31000, "bandpass", cache=None)
    assert np.array_equal(wide[19000:21000], narrow)


def test_common_median_reference_is_exact_and_needs_every_channel():
    rec, raw, gains, offsets = _recording()
    x = (raw[45000:75000] * gains + offsets).astype(np.float32)
    ref = x - np.median(x, axis=1, keepdims=True)
    ids = channel_order(rec)
    shown = ids[:3]  # the median still runs over all 40 channels
    for channels in (ids, shown):
        frame = make_frame(rec, 45000, 75000, channels, 1000, 100, "none", cmr=True,
                           cache=None)
        ref_min, ref_max, _ = minmax_envelope(ref[:, rec.channel_indices(channels)], 1000)
        assert np.array_equal(frame.mins_uv, ref_min) and np.array_equal(frame.maxs_uv, ref_max)
    both = make_frame(rec, 45000, 75000, ids, 1000, 100, "bandpass", cmr=True, cache=None)
    filtered = _chunked_reference(raw, gains, offsets, butter_sos(FS, (300.0, 6000.0)),
                                  45000, 75000)
    ref = filtered - np.median(filtered, axis=1, keepdims=True)
    ref_min, _, _ = minmax_envelope(ref[:, rec.channel_indices(ids)], 1000)
    assert np.abs(both.mins_uv - ref_min).max() < 1e-3


def test_a_few_shown_channels_are_filtered_alone_with_the_same_values():
    rec, *_ = _recording()
    ids = channel_order(rec)
    some = [ids[7], ids[2], ids[30]]
    full = make_frame(rec, 1000, 40000, ids, 500, 100, "bandpass", cache=None)
    few = make_frame(rec, 1000, 40000, some, 500, 100, "bandpass", cache=None)
    rows = [ids.index(c) for c in some]
    assert np.array_equal(few.mins_uv, full.mins_uv[:, rows])
    assert np.array_equal(few.maxs_uv, full.maxs_uv[:, rows])


def test_second_look_pan_and_zoom_out_reuse_cached_chunks():
    rec, *_ = _recording()
    ids = channel_order(rec)
    cache = ChunkCache()
    window = (CHUNK + 1000, 3 * CHUNK - 1000)
    first = make_frame(rec, *window, ids, 400, 100, "bandpass", cache=cache)
    assert (cache.misses, cache.hits, len(cache)) == (2, 0, 2)  # chunks 1 and 2
    again = make_frame(rec, *window, ids, 400, 100, "bandpass", cache=cache)
    assert (cache.misses, cache.hits) == (2, 2)
    assert np.array_equal(again.mins_uv, first.mins_uv)
    make_frame(rec, 0, 4 * CHUNK, ids, 400, 100, "bandpass", cache=cache)  # zoom out
    assert (cache.misses, cache.hits, len(cache)) == (4, 4, 4)  # chunks 0 and 3 are new
    uncached = make_frame(rec, *window, ids, 400, 100, "bandpass", cache=None)
    assert np.array_equal(uncached.mins_uv, first.mins_uv)
    # other settings are other chunks; the raw view never touches the cache
    make_frame(rec, *window, ids, 400, 100, "highpass", cache=cache)
    make_frame(rec, *window, ids, 400, 100, "none", cache=cache)
    assert cache.misses == 6 and len(cache) == 6


def test_changed_gains_are_not_served_from_old_chunks():
    rec, *_ = _recording()
    ids = channel_order(rec)
    cache = ChunkCache()
    before = make_frame(rec, 0, 20000, ids, 100, 100, "bandpass", cache=cache)
    rec.gains_to_uv = rec.gains_to_uv * 2
    after = make_frame(rec, 0, 20000, ids, 100, 100, "bandpass", cache=cache)
    assert cache.hits == 0
    assert np.allclose(after.maxs_uv, 2 * before.maxs_uv, rtol=1e-5, atol=1e-3)


def test_cache_is_bounded_by_bytes_and_drops_the_least_recently_used():
    cache = ChunkCache(max_bytes=3000)
    arrays = {k: np.zeros(250, np.float32) for k in "abcd"}  # 1000 bytes each
    for k in "abc":
        cache.put(k, arrays[k])
    assert cache.get("a") is arrays["a"]  # a is now the most recent
    cache.put("d", arrays["d"])
    assert cache.get("b") is None and cache.get("a") is not None and cache.nbytes == 3000
    view = np.zeros(2000, np.float32)[:10]  # a view is charged for its whole buffer
    cache.put("v", view)
    assert cache.get("v") is None and cache.nbytes <= 3000
    cache.put("big", np.zeros(1000, np.float32))  # larger than the budget: not kept
    assert cache.get("big") is None and cache.nbytes <= 3000
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_empty_window_and_no_channels():
    rec, *_ = _recording()
    mins, maxs, edges = processed_envelope(rec, 500, 500, [0, 1], 10, "bandpass", cache=None)
    assert mins.shape == maxs.shape == (0, 2) and edges.tolist() == [0]
    mins, maxs, edges = processed_envelope(rec, 500, 900, [], 10, "bandpass", cache=None)
    assert mins.shape == maxs.shape == (10, 0) and edges.size == 11
