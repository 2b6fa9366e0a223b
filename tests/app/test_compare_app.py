"""The comparison dashboard at the Param level (no browser): layout and linking, Comparison.show,
the exports (CSV read back, PNG decoded), `spikeviz compare --serve` argument handling (the
server function replaced: no server is started), the per-process shared comparison."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import spikeviz as sv
from spikeviz.app import cli
from spikeviz.io.npz import write_sorting
from tests.comparison_cases import ground_truth_folders
from tests.compute.test_comparison import FS, perturbed_pair

pn = pytest.importorskip("panel")

from spikeviz.app import compare_app  # noqa: E402
from spikeviz.app.compare_app import (  # noqa: E402
    CompareDashboard,
    build_compare_app,
    load_comparison,
    shared_comparison,
    summary_items,
)
from spikeviz.app.compare_export import CompareExport, matches_frame  # noqa: E402
from spikeviz.app.export_views import png_available  # noqa: E402


@pytest.fixture(scope="module")
def comparison():
    (t1, u1), (t2, u2), _n1, n2 = perturbed_pair(11)
    a = sv.Sorting.from_arrays(t1, u1, FS)
    b = sv.Sorting.from_arrays(t2, u2, FS, unit_ids=np.arange(50, 50 + n2))
    return sv.compare(a, b, ground_truth=True, exhaustive_gt=True, names=("truth", "ks"))


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory, comparison):
    root = tmp_path_factory.mktemp("cmpapp")
    return (write_sorting(comparison.sorting1, root / "truth.npz"),
            write_sorting(comparison.sorting2, root / "ks.npz"))


def test_dashboard_links_the_views(comparison, tmp_path):
    d = CompareDashboard(comparison, output_dir=tmp_path)
    ordered = comparison.ordered_agreement()
    # opens on the ordered matrix's first cell, a match
    assert d.selection.pair == (ordered.index[0], ordered.columns[0])
    assert d.pair.data.unit1 == ordered.index[0]
    n_rows = d.agreement.shape[0]
    d.agreement.tap(3.5, n_rows - 2.5)  # row 2, column 3
    assert d.selection.pair == (ordered.index[2], ordered.columns[3])
    assert (d.pair.data.unit1, d.pair.data.unit2) == d.selection.pair
    d.performance.click_row(4)
    gt = comparison.performance.index[4]
    assert d.selection.unit1 == gt and d.pair.data.unit1 == gt
    # the confusion matrix works only while its tab is shown
    assert not d.confusion.active
    d.matrix_tabs.active = 1
    assert d.confusion.active and not d.agreement.active
    text = dict(summary_items(comparison))
    assert text["matched"] == str(comparison.num_matched)
    assert text["mean accuracy"] == f"{comparison.performance['accuracy'].mean():.3f}"
    pn.panel(d).get_root()
    d.dispose()


def test_build_app_and_show(comparison, tmp_path):
    template = build_compare_app(comparison, output_dir=tmp_path)
    assert isinstance(template, pn.template.FastListTemplate)
    assert isinstance(template.dashboard, CompareDashboard)
    shown = comparison.show(output_dir=tmp_path)  # Comparison.show(), wired by spikeviz
    assert isinstance(shown, CompareDashboard) and shown.comparison is comparison


def test_csv_exports_read_back(comparison, tmp_path):
    d = CompareDashboard(comparison, output_dir=tmp_path)
    export = d.export
    path = export.run("matches")
    assert path.parent == tmp_path.resolve() and path.suffix == ".csv"
    back = pd.read_csv(path)
    frame = matches_frame(comparison)
    assert list(back.columns) == ["truth", "ks", "agreement", "coincident", "num_spikes1",
                                  "num_spikes2", "best_match_of_unit1",
                                  "best_agreement_of_unit1"]
    matched = back.dropna(subset=["truth", "ks"])
    expected = {(u, v) for u, v in comparison.matches.items() if not pd.isna(v)}
    assert {(int(u), int(v)) for u, v in zip(matched["truth"], matched["ks"],
                                             strict=True)} == expected
    for _, row in matched.iterrows():
        assert row["agreement"] == pytest.approx(
            comparison.agreement.loc[int(row["truth"]), int(row["ks"])], abs=1e-12)
        assert row["coincident"] == comparison.match_counts.loc[int(row["truth"]),
                                                                int(row["ks"])]
    # every unit of both sortings exactly once
    assert sorted(back["truth"].dropna().astype(int)) == comparison.unit_ids1.tolist()
    assert sorted(back["ks"].dropna().astype(int)) == comparison.unit_ids2.tolist()
    assert len(back) == len(frame)
    perf_path = export.run("performance")
    perf = pd.read_csv(perf_path)
    np.testing.assert_allclose(perf["accuracy"], comparison.performance["accuracy"])
    assert perf["gt_unit_id"].tolist() == comparison.performance.index.tolist()
    assert export.run("matches") != path  # a new name, never overwritten
    # the button path (a thread) shows a download
    export.start("matches")
    export.wait(60)
    assert export.status == "done" and export.download.visible
    assert export.download.filename.endswith(".csv")


def test_performance_export_refused_without_ground_truth(comparison, tmp_path):
    c = sv.compare(comparison.sorting1, comparison.sorting2)
    export = CompareExport(c, tmp_path)
    assert export.buttons["performance"].disabled
    with pytest.raises(sv.InputError, match="ground-truth"):
        export.run("performance")


@pytest.mark.skipif(not png_available(), reason="PNG export needs Chromium and Playwright")
def test_agreement_png(comparison, tmp_path):
    from PIL import Image

    d = CompareDashboard(comparison, output_dir=tmp_path)
    path = d.export.run("png")
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert image.shape[0] > 400 and image.shape[1] > 400
    r, _g, b = image[..., 0], image[..., 1], image[..., 2]
    dark_blue = (b > 100) & (b - r > 60) & (r < 80)  # high agreement cells (Blues)
    assert dark_blue.sum() > 1000


# -- command line ----------------------------------------------------------------------------
def test_cli_serve_arguments(npz_files, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(compare_app, "serve_comparison",
                        lambda comparison, **kw: calls.append((comparison, kw)))
    a, b = map(str, npz_files)
    assert cli.main(["compare", a, b, "--ground-truth", "--serve", "--port", "6123"]) == 0
    (comparison, kw), = calls
    assert kw == {"port": 6123, "address": "127.0.0.1", "show": False,
                  "allow_websocket_origin": []}
    assert comparison.ground_truth and comparison.names == ("truth.npz", "ks.npz")
    assert "matched units" in capsys.readouterr().out  # the summary is printed first
    calls.clear()
    assert cli.main(["compare", a, b]) == 0  # no --serve: no server
    assert calls == []
    assert cli.main(["compare", a, b, "--serve", "--address", "0.0.0.0", "--port", "7000",
                     "--allow-websocket-origin", "lab.example:80"]) == 0
    assert calls[0][1]["address"] == "0.0.0.0"
    assert calls[0][1]["allow_websocket_origin"] == ["lab.example:80"]
    args = cli.build_parser().parse_args(["compare", a, b])
    assert (args.serve, args.port, args.address) == (False, 5006, "127.0.0.1")


def test_cli_bad_input_does_not_serve(npz_files, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(compare_app, "serve_comparison", lambda *a, **k: calls.append(1))
    code = cli.main(["compare", str(npz_files[0]), str(tmp_path / "missing.npz"), "--serve"])
    assert code == cli.EXIT_BAD_INPUT and calls == []
    assert "error" in capsys.readouterr().err


def test_load_and_shared_comparison(npz_files):
    a, b = npz_files
    c = load_comparison(a, b, ground_truth=True)
    assert c.names == ("truth.npz", "ks.npz") and c.num_matched > 0
    first = shared_comparison(a, b, warm=False, ground_truth=True)
    assert shared_comparison(a, b, warm=False, ground_truth=True) is first
    assert shared_comparison(a, b, warm=False, ground_truth=False) is not first


def test_warm_up_with_recordings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth, tested = ground_truth_folders(tmp_path, duration_s=10.0, num_channels=8,
                                             num_units=6)
    c = load_comparison(truth, tested, ground_truth=True)
    seconds = compare_app.warm_up(c)
    assert seconds > 0
    # the templates are cached: the pair view finds them without computing again
    assert c.session1.analysis.get("templates") is not None
    d = CompareDashboard(c, output_dir=tmp_path / "out")
    assert set(d.pair.data.templates) == {1, 2}
    assert "snr" in d.performance.table


def test_apps_compare_script(npz_files, monkeypatch):
    """`panel serve apps/compare.py --args A B --ground-truth` runs the script per page: it
    builds the page from the shared comparison of the command line's paths."""
    import runpy
    import sys
    from pathlib import Path

    monkeypatch.setattr(compare_app, "warm_up", lambda comparison, views=True: 0.0)
    script = Path(__file__).resolve().parents[2] / "apps" / "compare.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(npz_files[0]), str(npz_files[1]),
                                      "--ground-truth"])
    namespace = runpy.run_path(str(script))
    c = namespace["comparison"]
    assert c.ground_truth and c.names == ("truth.npz", "ks.npz")
    assert shared_comparison(*npz_files, ground_truth=True, exhaustive_gt=False,
                             delta_ms=0.4, sampling_frequency=None) is c
