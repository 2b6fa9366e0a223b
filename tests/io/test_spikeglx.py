"""SpikeGLX reader: the 19 real ``.meta`` files of ../shared/data/spikeglx_meta, each paired in
a temp dir with a generated ``.bin`` (its ``fileSizeBytes`` rewritten to match), checked against
probeinterface (geometry) and SpikeInterface (gains, sampling rate, scaled traces)."""

from __future__ import annotations

import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

import spikeviz
from spikeviz.errors import InputError
from spikeviz.io import detect_format, spikeglx

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
META_DIR = DATA / "spikeglx_meta"
MISSING = f"real SpikeGLX .meta files not found at {META_DIR} (a fresh clone has no ../shared)"
needs_data = pytest.mark.skipif(not META_DIR.is_dir(), reason=MISSING)
METAS = (sorted(p.name for p in META_DIR.glob("*.meta")) if META_DIR.is_dir() else
         [pytest.param("absent", marks=pytest.mark.skip(reason=MISSING))])
NP1110 = "NP1110 UHD2"
NOISE = "Noise_g0_t0.imec0.ap.meta"  # NP1.0, AP gain 500, LF gain 125, no imMaxInt
SUBSET = "NP1_saved_only_subset_of_channels.meta"  # snsSaveChanSubset=0:150,768


# -- helpers ----------------------------------------------------------------------------------
def set_key(text: str, key: str, value: str | None) -> str:
    """The meta text with ``key`` set to ``value`` (removed when None)."""
    lines = [line for line in text.splitlines() if line.partition("=")[0] != key]
    return "\n".join(lines + ([f"{key}={value}"] if value is not None else [])) + "\n"


def make_pair(tmp_path: Path, meta_name: str, stem: str = "X.ap", n_samples: int = 1000,
              edits: dict | None = None, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Copy of a real meta beside a generated int16 .bin of ``n_samples``; returns (bin, data)."""
    text = (META_DIR / meta_name).read_text()
    n = int(re.search(r"^nSavedChans=(\d+)$", text, re.M).group(1))
    text = set_key(text, "fileSizeBytes", str(n_samples * n * 2))
    for key, value in (edits or {}).items():
        text = set_key(text, key, value)
    folder = tmp_path / "rec"
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).integers(-32768, 32767, (n_samples, n), dtype=np.int16,
                                                endpoint=True)
    data.tofile(folder / f"{stem}.bin")
    (folder / f"{stem}.meta").write_text(text)
    return folder / f"{stem}.bin", data


def si_read(folder: Path, kind: str = "ap"):
    """SpikeInterface's recording of the (non-SYNC) stream in ``folder``."""
    se = pytest.importorskip("spikeinterface.extractors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        streams = [s for s in se.get_neo_streams("spikeglx", folder)[1]
                   if not s.endswith("-SYNC") and (kind == "nidq" or s.endswith(f".{kind}"))]
        assert len(streams) == 1, streams
        return se.read_spikeglx(folder, stream_id=streams[0])


def si_read_or_skip(folder: Path, meta_name: str, kind: str = "ap"):
    try:
        return si_read(folder, kind)
    except IndexError:
        if not meta_name.startswith("NP1110"):
            raise
        import neo
        import spikeinterface
        pytest.skip(f"SpikeInterface {spikeinterface.__version__} (neo {neo.__version__}) "
                    f"cannot open {NP1110} metas: it reads AP/LF gains from per-channel imro "
                    f"columns, but the NP1110 imro table has 24 group entries (group bankA "
                    f"bankB) with the gains in its header -> IndexError. Gains checked by hand "
                    f"in test_np1110_gains_from_imro_header")


def si_scaled(si_rec) -> np.ndarray:
    params = inspect.signature(si_rec.get_traces).parameters
    key = "return_in_uV" if "return_in_uV" in params else "return_scaled"
    return si_rec.get_traces(**{key: True})


def neural(recording) -> np.ndarray:
    """Columns of channels that sit on an electrode (not SY / digital)."""
    return np.flatnonzero(~np.isnan(recording.channel_locations_um[:, 0]))


@needs_data
def test_all_19_shared_metas_are_present():
    assert len(METAS) == 19, METAS


# -- geometry against probeinterface -----------------------------------------------------------
@pytest.mark.parametrize("meta_name", METAS)
@pytest.mark.parametrize("source", ["meta maps", "imro table only"])
def test_positions_match_probeinterface(tmp_path, meta_name, source):
    """Locations (µm) and shanks of the saved AP channels equal probeinterface's, in file order,
    from ~snsGeomMap/~snsShankMap and, with those maps removed, from ~imroTbl + probe type."""
    pi = pytest.importorskip("probeinterface")
    probe = pi.read_spikeglx(META_DIR / meta_name)
    edits = {"~snsGeomMap": None, "~snsShankMap": None} if source != "meta maps" else {}
    bin_path, _ = make_pair(tmp_path, meta_name, n_samples=10, edits=edits)
    rec = spikeglx.read_recording(bin_path)
    if source != "meta maps" and meta_name.startswith("NP1110"):
        # documented: the NP1110 group-based electrode addressing is not derived from the
        # imro table; SpikeGLX writes ~snsGeomMap for these probes
        assert rec.channel_locations_um is None and rec.channel_groups is None
        return
    cols = neural(rec)
    order = np.argsort(probe.device_channel_indices)
    np.testing.assert_array_equal(rec.channel_locations_um[cols],
                                  probe.contact_positions[order])
    shanks = np.zeros(len(cols), int) if probe.shank_ids is None else \
        probe.shank_ids[order].astype(int)
    np.testing.assert_array_equal(rec.channel_groups[cols], shanks)
    others = np.setdiff1d(np.arange(rec.num_channels), cols)
    assert len(others) == rec.num_channels - probe.get_contact_count() > 0  # the SY channels
    assert np.all(rec.channel_groups[others] == -1)
    np.testing.assert_array_equal(rec.gains_to_uv[others], 1.0)


# -- gains, rate and traces against SpikeInterface ---------------------------------------------
@pytest.mark.parametrize("meta_name", METAS)
def test_gains_and_rate_match_spikeinterface(tmp_path, meta_name):
    bin_path, data = make_pair(tmp_path, meta_name)
    rec = spikeglx.read_recording(bin_path)
    si_rec = si_read_or_skip(bin_path.parent, meta_name)
    cols = neural(rec)
    assert si_rec.get_num_channels() == len(cols)
    assert rec.sampling_frequency == si_rec.get_sampling_frequency()
    np.testing.assert_allclose(rec.gains_to_uv[cols], si_rec.get_channel_gains(), rtol=1e-12)
    assert np.all(rec.offsets_to_uv == 0)
    np.testing.assert_array_equal(rec.traces(0, 50, scaled=False), data[:50])


@pytest.mark.parametrize("meta_name", METAS)
def test_scaled_traces_match_spikeinterface(tmp_path, meta_name):
    bin_path, _ = make_pair(tmp_path, meta_name)
    rec = spikeglx.read_recording(bin_path)
    si_rec = si_read_or_skip(bin_path.parent, meta_name)
    try:
        expected = si_scaled(si_rec)
    except ValueError as err:
        if not meta_name.startswith("NP2020"):
            raise
        pytest.skip(f"SpikeInterface cannot scale NP2020 traces (4 SY channels): its AP stream "
                    f"returns all 1540 columns but has 1536 gains ({err}); gains and rate are "
                    f"compared in test_gains_and_rate_match_spikeinterface")
    cols = neural(rec)
    np.testing.assert_allclose(rec.traces(channel_ids=rec.channel_ids[cols]), expected,
                               rtol=1e-6)


@needs_data
def test_lf_file_matches_spikeinterface(tmp_path):
    """An NP1.0 LF file: LF gains (125 here, not the AP 500), channel ids 384..767 and 768."""
    edits = {"snsApLfSy": "0,384,1", "snsSaveChanSubset": "384:768", "imSampRate": "2500",
             "fileName": "D:/Noise4Sam_g0/Noise4Sam_g0_t0.imec0.lf.bin"}
    bin_path, data = make_pair(tmp_path, NOISE, stem="X.lf", edits=edits)
    rec = spikeglx.read_recording(bin_path)
    np.testing.assert_array_equal(rec.channel_ids, np.r_[384:769])
    np.testing.assert_allclose(rec.gains_to_uv[:384], 0.6 / 512 / 125 * 1e6, rtol=1e-12)
    assert rec.gains_to_uv[384] == 1.0
    ap = spikeglx.read_recording(make_pair(tmp_path / "ap", NOISE)[0])
    np.testing.assert_array_equal(rec.channel_locations_um, ap.channel_locations_um)
    si_rec = si_read(bin_path.parent, "lf")
    assert rec.sampling_frequency == si_rec.get_sampling_frequency() == 2500
    np.testing.assert_allclose(rec.gains_to_uv[:384], si_rec.get_channel_gains(), rtol=1e-12)
    np.testing.assert_allclose(rec.traces(channel_ids=rec.channel_ids[:384]), si_scaled(si_rec),
                               rtol=1e-6)
    np.testing.assert_array_equal(rec.traces(scaled=False), data)


def test_nidq_matches_spikeinterface(tmp_path):
    """A synthetic NI-DAQ meta (no real one in the shared data): MN/MA/XA gains in µV, DW 1."""
    names = ["MN0", "MN1", "MA0", "MA1", "XA0", "XA1", "XA2", "XD0"]
    n, n_samples = len(names), 1000
    chan_map = "".join(f"({name};{i}:{i})" for i, name in enumerate(names))
    (tmp_path / "X_g0_t0.nidq.meta").write_text(
        f"typeThis=nidq\nfileName=D:/run/X_g0_t0.nidq.bin\nfileSizeBytes={n_samples * n * 2}\n"
        f"firstSample=0\nnSavedChans={n}\nniSampRate=25000.5\nniAiRangeMax=5\n"
        f"niAiRangeMin=-5\nniMaxInt=32768\nniMNGain=200\nniMAGain=2\nniXDChans1=\n"
        f"snsMnMaXaDw=2,2,3,1\nsnsSaveChanSubset=all\n~snsChanMap=(2,2,2,3,1){chan_map}\n")
    data = np.random.default_rng(3).integers(-3000, 3000, (n_samples, n), dtype=np.int16)
    data.tofile(tmp_path / "X_g0_t0.nidq.bin")
    rec = spikeglx.read_recording(tmp_path / "X_g0_t0.nidq.meta")
    volts = 5 / 32768 * 1e6
    np.testing.assert_allclose(rec.gains_to_uv, [volts / 200] * 2 + [volts / 2] * 2 +
                               [volts] * 3 + [1.0], rtol=1e-12)
    np.testing.assert_array_equal(rec.channel_ids, np.arange(n))
    assert rec.channel_locations_um is None and rec.sampling_frequency == 25000.5
    si_rec = si_read(tmp_path, "nidq")
    assert rec.sampling_frequency == si_rec.get_sampling_frequency()
    np.testing.assert_allclose(rec.gains_to_uv[:7], si_rec.get_channel_gains()[:7], rtol=1e-12)
    np.testing.assert_allclose(rec.traces()[:, :7], si_scaled(si_rec)[:, :7], rtol=1e-6)


# -- gains without SpikeInterface ---------------------------------------------------------------
@needs_data
def test_np1110_gains_from_imro_header(tmp_path):
    """NP1110 gains live in the imro header (1110,col_mode,ref,ap_gain,lf_gain,hipass); the
    meta's imChan0apGain (same value) wins when present."""
    meta = "NP1110_bank0_g0_t0.imec0.ap.meta"
    rec = spikeglx.read_recording(make_pair(tmp_path, meta)[0])
    np.testing.assert_allclose(rec.gains_to_uv[:384], 0.6 / 512 / 500 * 1e6, rtol=1e-12)
    assert rec.gains_to_uv[384] == 1.0
    imro = (META_DIR / meta).read_text().split("~imroTbl=")[1].splitlines()[0]
    edits = {"imChan0apGain": None, "imMaxInt": None,
             "~imroTbl": imro.replace("(1110,2,0,500,250,1)", "(1110,2,0,1000,250,1)")}
    rec = spikeglx.read_recording(make_pair(tmp_path / "b", meta, edits=edits)[0])
    np.testing.assert_allclose(rec.gains_to_uv[:384], 0.6 / 512 / 1000 * 1e6, rtol=1e-12)


@needs_data
@pytest.mark.parametrize("meta_name, edits, uv_per_bit", [
    ("p2_g0_t0.imec0.ap.meta", {"imMaxInt": None}, 0.5 / 8192 / 80 * 1e6),  # NP2.0 type 21
    ("NP2_4_shanks.imec0.ap.meta", {"imMaxInt": None}, 0.5 / 8192 / 80 * 1e6),  # type 24
    ("NP2_2013_all_channels.imec0.ap.meta", {"imMaxInt": None, "imChan0apGain": None},
     0.62 / 2048 / 100 * 1e6),  # NP2013: 12-bit ADC, gain 100
    ("phase3a.imec.ap.meta", {}, 0.6 / 512 / 500 * 1e6),  # 3A: no imMaxInt, no probe type
])
def test_default_max_int_and_fixed_gains(tmp_path, meta_name, edits, uv_per_bit):
    rec = spikeglx.read_recording(make_pair(tmp_path, meta_name, edits=edits)[0])
    np.testing.assert_allclose(rec.gains_to_uv[neural(rec)], uv_per_bit, rtol=1e-12)


# -- channel ids, windows, loading -------------------------------------------------------------
@needs_data
def test_subset_channel_ids_and_trace_window(tmp_path):
    bin_path, data = make_pair(tmp_path, SUBSET)
    rec = spikeglx.read_recording(bin_path)
    np.testing.assert_array_equal(rec.channel_ids, np.r_[0:151, 768])
    assert rec.channel_ids.dtype == np.int64 and rec.num_samples == 1000
    ids, columns = [768, 150, 0, 7], [151, 150, 0, 7]
    window = rec.traces(100, 250, channel_ids=ids)
    expected = data[100:250][:, columns].astype(np.float32) * \
        rec.gains_to_uv[columns].astype(np.float32)
    np.testing.assert_array_equal(window, expected)
    assert window.dtype == np.float32 and window[:, 0].tolist() == data[100:250, 151].tolist()
    np.testing.assert_array_equal(rec.traces(100, 250, ids, scaled=False), data[100:250][:,
                                                                                  columns])
    np.testing.assert_allclose(rec.gains_to_uv[:151], 0.6 / 512 / 500 * 1e6, rtol=1e-12)
    two = spikeglx.read_recording(make_pair(tmp_path / "b", "NP2_2013_subset_channels."
                                            "imec0.ap.meta", n_samples=10)[0])
    np.testing.assert_array_equal(two.channel_ids, np.r_[0:36, 72:96, 192:228, 264:288, 384])


@needs_data
def test_load_detects_spikeglx(tmp_path):
    bin_path, data = make_pair(tmp_path, "allan-longcol_g0_t0.imec0.ap.meta", n_samples=300)
    assert detect_format(bin_path) == "spikeglx" == detect_format(bin_path.with_suffix(".meta"))
    for path in (bin_path, bin_path.with_suffix(".meta")):
        session = spikeviz.load(path)
        assert session.format == "spikeglx" and session.sorting.num_units == 0
        rec = session.recording
        assert rec.sampling_frequency == 29999.941586 and rec.num_samples == 300
        assert rec.source == str(bin_path) and session.num_channels == 385
        np.testing.assert_array_equal(rec.traces(10, 20, [768], scaled=False), data[10:20, 384:])
    assert spikeviz.read_recording(bin_path, sampling_frequency=30000.0).sampling_frequency \
        == 30000.0


@needs_data
def test_sniff(tmp_path):
    bin_path, _ = make_pair(tmp_path, NOISE, n_samples=5)
    assert spikeglx.sniff(bin_path) and spikeglx.sniff(bin_path.with_suffix(".meta"))
    assert not spikeglx.sniff(bin_path.parent)
    lone = tmp_path / "lone.bin"
    lone.write_bytes(b"\0" * 8)
    (tmp_path / "orphan.meta").write_text("nSavedChans=1\n")
    assert not spikeglx.sniff(lone) and not spikeglx.sniff(tmp_path / "orphan.meta")
    assert detect_format(lone) == "binary"


def test_read_meta_keeps_tables_and_values_with_equals(tmp_path):
    path = tmp_path / "a.meta"
    path.write_text("userNotes=gain=2 today\n~snsShankMap=(1,2,480)(0:0:0:1)\nno equals\n")
    assert spikeglx.read_meta(path) == {"userNotes": "gain=2 today",
                                        "~snsShankMap": "(1,2,480)(0:0:0:1)"}


# -- bad input ----------------------------------------------------------------------------------
@needs_data
def test_bin_size_disagreeing_with_meta_names_the_bin(tmp_path):
    bin_path, data = make_pair(tmp_path, NOISE, n_samples=100)
    data[:60].tofile(bin_path)  # truncated: 60 of the declared 100 samples
    with pytest.raises(InputError) as err:
        spikeglx.read_recording(bin_path.with_suffix(".meta"))
    assert err.value.path == bin_path and err.value.field == "fileSizeBytes"
    assert str(bin_path) in str(err.value) and "46,200 bytes" in str(err.value)
    assert "declares 77,000" in str(err.value)


@needs_data
@pytest.mark.parametrize("key, value", [
    ("nSavedChans", None), ("nSavedChans", "many"), ("nSavedChans", "0"),
    ("fileSizeBytes", None), ("fileSizeBytes", "-2"), ("imSampRate", None),
    ("imSampRate", "nan"), ("imAiRangeMax", None), ("snsApLfSy", "384,0"),
    ("snsApLfSy", "300,0,1"), ("snsSaveChanSubset", "0:382,768"),
    ("snsSaveChanSubset", "0-383"), ("~imroTbl", "(0,384)(0 0 0)"),
    ("~snsShankMap", "(1,2,480)(0:zero:0:1)"), ("~snsShankMap", "1,2,480"),
])
def test_bad_meta_key_names_meta_and_key(tmp_path, key, value):
    bin_path, _ = make_pair(tmp_path, NOISE, n_samples=10, edits={key: value})
    with pytest.raises(InputError) as err:
        spikeglx.read_recording(bin_path)
    assert err.value.path == bin_path.with_suffix(".meta") and err.value.field == key
    assert str(bin_path.with_suffix(".meta")) in str(err.value) and key in str(err.value)


@needs_data
def test_shank_map_not_covering_the_saved_channels_falls_back_to_imro(tmp_path):
    pi = pytest.importorskip("probeinterface")
    shank_map = "(1,2,480)" + "(0:0:0:1)" * 10  # 10 entries for 384 saved AP channels
    bin_path, _ = make_pair(tmp_path, NOISE, n_samples=10, edits={"~snsShankMap": shank_map})
    rec = spikeglx.read_recording(bin_path)
    np.testing.assert_array_equal(rec.channel_locations_um[:384],
                                  pi.read_spikeglx(META_DIR / NOISE).contact_positions)


@needs_data
def test_unknown_probe_type_without_gain_is_an_error(tmp_path):
    edits = {"imDatPrb_type": "9999", "imDatPrb_pn": "NP9999", "imChan0apGain": None}
    bin_path, _ = make_pair(tmp_path, "NP2_2013_all_channels.imec0.ap.meta", n_samples=10,
                            edits=edits)
    with pytest.raises(InputError, match="unknown probe type 9999") as err:
        spikeglx.read_recording(bin_path)
    assert err.value.field == "imDatPrb_type"


def test_bin_without_meta_is_a_clear_error(tmp_path):
    lone = tmp_path / "rec.imec0.ap.bin"
    np.zeros((10, 4), np.int16).tofile(lone)
    for call in (lambda: spikeglx.read_recording(lone),
                 lambda: spikeviz.load(lone, format="spikeglx")):
        with pytest.raises(InputError, match=r"no SpikeGLX metadata file rec\.imec0\.ap\.meta"
                           ) as err:
            call()
        assert err.value.path == lone
    with pytest.raises(InputError, match=r"opened from its \.bin or \.meta"):
        spikeglx.read_recording(tmp_path / "rec.dat")
    with pytest.raises(InputError, match=r"\.meta file not found"):
        spikeglx.read_recording(tmp_path / "gone.meta")
