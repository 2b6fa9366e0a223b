"""Per-channel PCA: analytic snippets from known basis vectors, scikit-learn's exact PCA, and
SpikeInterface's principal_components (IncrementalPCA) on the same snippets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from spikeviz.compute.features import fit_pca, project_waveforms
from spikeviz.errors import InputError

T = 40


def _basis():
    t = np.arange(T)
    b1 = np.exp(-0.5 * ((t - 15) / 3.0) ** 2)
    b2 = np.sin(2 * np.pi * t / T)
    b1 /= np.linalg.norm(b1)
    b2 -= (b2 @ b1) * b1
    b2 /= np.linalg.norm(b2)
    return b1, b2


def _synthetic(seed=0, num_units=6, per_unit=300, num_channels=6, k=3):
    """Snippets = channel offset + a1 b1 + a2 b2, var(a1) = 25 > var(a2) = 1.

    a1 and a2 are exactly uncorrelated over the snippets of each channel, so the principal
    components are exactly b1 and b2 (b1, b2 orthonormal)."""
    rng = np.random.default_rng(seed)
    b1, b2 = _basis()
    chans = np.full((num_units, k), -1)
    for u in range(num_units):
        width = k if u % 2 == 0 else k - 1            # odd units have a padded slot
        chans[u, :width] = (u + np.arange(width)) % num_channels
    labels = np.repeat(np.arange(num_units), per_unit)
    n = labels.size
    a1 = rng.normal(0.0, 5.0, (n, k))
    a2 = rng.normal(0.0, 1.0, (n, k))
    slot_chan = chans[labels]                              # (n, k)
    for c in range(num_channels):      # make a2 exactly uncorrelated with a1 on each channel
        on = slot_chan == c
        x, y = a1[on] - a1[on].mean(), a2[on] - a2[on].mean()
        a2[on] = y - (x @ y) / (x @ x) * x
    offset = 10.0 * np.arange(num_channels)
    wf = a1[:, None, :] * b1[None, :, None] + a2[:, None, :] * b2[None, :, None]
    wf += offset[np.maximum(slot_chan, 0)][:, None, :]
    wf[np.broadcast_to((slot_chan < 0)[:, None, :], wf.shape)] = np.nan  # padding is never read
    perm = rng.permutation(n)                              # snippets need not be grouped
    return (wf[perm].astype(np.float32), labels[perm], chans, a1[perm], a2[perm],
            slot_chan[perm], num_channels)


def test_known_components_and_projections():
    wf, labels, chans, a1, a2, slot_chan, nch = _synthetic()
    b1, b2 = _basis()
    model = fit_pca(wf, labels, chans, nch, n_components=3, whiten=False)
    assert model["components"].shape == (nch, 3, T)
    assert model["mean"].shape == (nch, T)
    for c in range(nch):
        comps = model["components"][c].astype(np.float64)
        np.testing.assert_allclose(abs(comps[0] @ b1), 1.0, atol=1e-6)
        np.testing.assert_allclose(abs(comps[1] @ b2), 1.0, atol=1e-6)
        for comp in comps[:2]:       # sign rule: largest entry positive
            assert comp[np.argmax(np.abs(comp))] > 0
        # third component: no variance left
        assert model["explained_variance"][c, 2] < 1e-9 * model["explained_variance"][c, 0]
        used = slot_chan == c
        np.testing.assert_allclose(model["explained_variance"][c, :2],
                                   [a1[used].var(ddof=1), a2[used].var(ddof=1)], rtol=1e-5)
        np.testing.assert_allclose(model["mean"][c], 10.0 * c + a1[used].mean() * b1
                                   + a2[used].mean() * b2, atol=1e-4)
        assert model["num_samples"][c] == used.sum()
    proj = project_waveforms(wf, labels, chans, model)
    assert proj.dtype == np.float32 and proj.shape == (wf.shape[0], 3, wf.shape[2])
    valid = slot_chan >= 0
    for j, (coef, b) in enumerate([(a1, b1), (a2, b2)]):
        sign = np.sign(model["components"][:, j] @ b)[np.maximum(slot_chan, 0)]
        centred = coef - np.array([coef[slot_chan == c].mean() for c in range(nch)])[
            np.maximum(slot_chan, 0)]
        np.testing.assert_allclose(proj[:, j, :][valid], (sign * centred)[valid], atol=2e-4)
    np.testing.assert_array_equal(proj.transpose(0, 2, 1)[~valid], 0.0)


def test_whitening_gives_unit_variance_and_zero_for_empty_components():
    wf, labels, chans, _, _, slot_chan, nch = _synthetic(seed=1)
    model = fit_pca(wf, labels, chans, nch, n_components=3, whiten=True)
    proj = project_waveforms(wf, labels, chans, model)
    for c in range(nch):
        x = proj.transpose(0, 2, 1)[slot_chan == c]       # (snippets on c, components)
        np.testing.assert_allclose(x[:, :2].var(axis=0, ddof=1), 1.0, rtol=1e-4)
        np.testing.assert_array_equal(x[:, 2], 0.0)   # zero-variance component -> 0


def test_dense_equals_sparse_with_all_channels():
    rng = np.random.default_rng(2)
    wf = rng.normal(0, 1, (500, T, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 500)
    full = np.tile(np.arange(4), (3, 1))
    dense = fit_pca(wf, labels, None, 4, n_components=4)
    sparse = fit_pca(wf, labels, full, 4, n_components=4)
    for key in ("mean", "components", "explained_variance", "num_samples"):
        np.testing.assert_allclose(dense[key], sparse[key], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(project_waveforms(wf, labels, None, dense),
                               project_waveforms(wf, labels, full, sparse), atol=1e-5)


def test_units_with_fewer_snippets_than_components_are_not_fitted():
    rng = np.random.default_rng(3)
    wf = rng.normal(0, 1, (103, T, 2)).astype(np.float32)
    labels = np.r_[np.zeros(100, int), np.ones(3, int)]
    wf[100:] += 1000.0                                   # would dominate the mean if used
    chans = np.array([[0, 1], [1, -1]])
    model = fit_pca(wf, labels, chans, 2, n_components=5)
    np.testing.assert_array_equal(model["num_samples"], [100, 100])
    assert np.abs(model["mean"]).max() < 1.0
    proj = project_waveforms(wf, labels, chans, model)
    assert np.all(np.abs(proj[100:, :, 0]) > 0)           # still projected
    np.testing.assert_array_equal(proj[100:, :, 1], 0.0)  # padded slot


def test_unfitted_channel_projects_to_zero_and_bad_input():
    rng = np.random.default_rng(4)
    wf = rng.normal(0, 1, (50, T, 1)).astype(np.float32)
    labels = np.zeros(50, int)
    model = fit_pca(wf, labels, np.array([[2]]), 4, n_components=2)
    np.testing.assert_array_equal(model["num_samples"], [0, 0, 50, 0])
    np.testing.assert_array_equal(model["scale"][[0, 1, 3]], 0.0)
    other = project_waveforms(wf, labels, np.array([[1]]), model)
    np.testing.assert_array_equal(other, 0.0)
    with pytest.raises(InputError, match="n_components"):
        fit_pca(wf, labels, np.array([[2]]), 4, n_components=T + 1)
    with pytest.raises(InputError, match="spike_unit_index"):
        fit_pca(wf, labels + 1, np.array([[2]]), 4)
    with pytest.raises(InputError, match="dense"):
        fit_pca(wf, labels, None, 4)


def test_equal_to_sklearn_pca_per_channel():
    """Exact PCA: scikit-learn's batch PCA on each channel's snippets gives the same model."""
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(5)
    wf, labels, chans, _, _, slot_chan, nch = _synthetic(seed=6)
    wf = wf + rng.normal(0, 0.3, wf.shape).astype(np.float32)   # full-rank covariance
    model = fit_pca(wf, labels, chans, nch, n_components=4, whiten=True)
    proj = project_waveforms(wf, labels, chans, model)
    snippets = wf.transpose(0, 2, 1)                     # (n, k, T)
    for c in range(nch):
        x = snippets[slot_chan == c].astype(np.float64)
        ref = decomposition.PCA(n_components=4, whiten=True, svd_solver="full").fit(x)
        signs = np.sign(np.sum(ref.components_ * model["components"][c], axis=1))
        np.testing.assert_allclose(model["components"][c] * signs[:, None], ref.components_,
                                   atol=2e-5)
        np.testing.assert_allclose(model["explained_variance"][c], ref.explained_variance_,
                                   rtol=1e-6)
        np.testing.assert_allclose(model["explained_variance_ratio"][c],
                                   ref.explained_variance_ratio_, rtol=1e-6)
        np.testing.assert_allclose(model["mean"][c], ref.mean_, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(proj.transpose(0, 2, 1)[slot_chan == c] * signs,
                                   ref.transform(x), atol=2e-4)


# --------------------------------------------------------------------------- SpikeInterface

def test_close_to_spikeinterface_incremental_pca():
    """Same snippets as SpikeInterface's principal_components (by_channel_local, whitened).

    SpikeInterface's IncrementalPCA is an approximation of the exact PCA computed here: the
    means agree to float32 rounding, the first component and its variance closely, later
    components less (not compared).
    """
    si_core = pytest.importorskip("spikeinterface.core")
    pytest.importorskip("sklearn")
    rec, sorting = si_core.generate_ground_truth_recording(durations=[20], num_channels=12,
                                                           num_units=6, seed=31)
    analyzer = si_core.create_sorting_analyzer(sorting, rec, format="memory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("random_spikes", "waveforms", "principal_components"):
            analyzer.compute(name, **({"seed": 0} if name == "random_spikes" else {}))
    ext = analyzer.get_extension("principal_components")
    waveforms = analyzer.get_extension("waveforms").data["waveforms"]
    picked = analyzer.get_extension("random_spikes").get_random_spikes()
    labels = picked["unit_index"]
    si_proj = ext.data["pca_projection"]
    k = waveforms.shape[2]
    chans = np.full((analyzer.get_num_units(), k), -1)
    for i, unit_id in enumerate(analyzer.unit_ids):
        ind = analyzer.sparsity.unit_id_to_channel_indices[unit_id]
        chans[i, :ind.size] = ind
    model = fit_pca(waveforms, labels, chans, rec.get_num_channels())
    proj = project_waveforms(waveforms, labels, chans, model)
    for c, si_model in enumerate(ext.get_pca_model()):
        assert model["num_samples"][c] == si_model.n_samples_seen_
        np.testing.assert_allclose(model["mean"][c], si_model.mean_,
                                   atol=1e-6 * np.abs(si_model.mean_).max())
        cos = model["components"][c, 0] @ si_model.components_[0]
        assert cos > 0.9999                                    # same sign rule
        np.testing.assert_allclose(model["explained_variance"][c, 0],
                                   si_model.explained_variance_[0], rtol=0.01)
    valid = chans[labels] >= 0
    first_ours, first_si = proj[:, 0, :][valid], si_proj[:, 0, :][valid]
    assert np.corrcoef(first_ours, first_si)[0, 1] > 0.9999
    np.testing.assert_allclose(first_ours, first_si, atol=0.02 * np.abs(first_si).max())
    np.testing.assert_array_equal(proj.transpose(0, 2, 1)[~valid], 0.0)
