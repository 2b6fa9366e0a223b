"""On disk: :func:`generate_to_folder` writes a Phy/KiloSort folder with the ground truth and
a manifest; the demo dataset is cached in :func:`data_dir` and reused while complete."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import atomic_folder
from ..errors import InputError
from ..io import load
from ..io.npz import write_sorting
from ..io.phy_write import write_phy_folder
from ..model import Session
from .truth import GENERATOR_VERSION, _parameters, generate

MANIFEST = "manifest.json"
_HASHED_LIMIT_BYTES = 64 * 2 ** 20  # files above this are checked by size only


def _file_facts(folder: Path) -> dict:
    facts = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name == MANIFEST:
            continue
        size = path.stat().st_size
        entry = {"size": size}
        if size <= _HASHED_LIMIT_BYTES:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        facts[path.name] = entry
    return facts


def _dump_json(data) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def generate_to_folder(folder: str | Path, duration_s: float = 60.0, num_channels: int = 64,
                       num_units: int = 20, seed: int = 0, overwrite: bool = False, *,
                       progress: Callable[[int, int], None] | None = None,
                       **kwargs) -> Path:
    """Write a synthetic dataset as a Phy/KiloSort folder, atomically; returns the folder.

    The folder holds ``recording.dat`` (int16, time-major, streamed chunk by chunk: memory
    stays bounded), ``params.py`` (with ``gain_to_uv``, which :mod:`spikeviz.io.phy` reads, so
    ``spikeviz.load`` gives traces in µV) and the sorter output (see
    :mod:`spikeviz.io.phy_write`), ``ground_truth.npz`` (true units, SpikeInterface NPZ),
    ``ground_truth.json`` (kinds, split/merge mapping, gain, seed, version),
    ``ground_truth_templates.npy`` (units, samples, channels) µV,
    ``ground_truth_amplitude_scale.npy`` (per true spike, npz order) and ``manifest.json``
    (parameters, sizes and hashes; written last). Other keyword arguments go to
    :func:`generate`. ``progress(done_samples, total_samples)`` is called after each chunk.
    """
    folder = Path(folder)
    gt = generate(duration_s=duration_s, num_channels=num_channels, num_units=num_units,
                  seed=seed, **kwargs)
    if not folder.parent.is_dir():
        raise InputError("the destination's parent folder does not exist", path=folder.parent)
    if overwrite and folder.exists() and not (folder / MANIFEST).is_file():
        raise InputError("exists and was not written by spikeviz generate (no manifest.json); "
                         "refusing to replace it", path=folder)
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        with open(tmp / "recording.dat", "wb") as f:
            for start, block in gt._renderer.chunks():
                block.tofile(f)
                if progress is not None:
                    progress(start + block.shape[0], gt.num_samples)
        so = gt.sorter_output
        write_phy_folder(
            tmp, so.sample_index, so.cluster_ids, gt.sampling_frequency,
            templates=so.templates, amplitudes=so.amplitudes,
            channel_positions_um=gt.channel_locations_um,
            channel_map=np.arange(gt.num_channels), cluster_groups=so.cluster_groups,
            params={"dat_path": "recording.dat", "n_channels_dat": gt.num_channels,
                    "dtype": "int16", "offset": 0, "sample_rate": gt.sampling_frequency,
                    "hp_filtered": False, "gain_to_uv": gt.gain_to_uv})
        write_sorting(gt.sorting, tmp / "ground_truth.npz")
        np.save(tmp / "ground_truth_templates.npy", gt.templates, allow_pickle=False)
        np.save(tmp / "ground_truth_amplitude_scale.npy",
                np.asarray(gt.sorting.spike_properties["amplitude_scale"]), allow_pickle=False)
        (tmp / "ground_truth.json").write_text(_dump_json(gt.mapping), encoding="utf-8")
        manifest = {"generator_version": GENERATOR_VERSION, "parameters": gt.parameters,
                    "files": _file_facts(tmp)}
        (tmp / MANIFEST).write_text(_dump_json(manifest), encoding="utf-8")
    return folder


def read_ground_truth(folder: str | Path) -> dict:
    """The ``ground_truth.json`` of a generated folder."""
    path = Path(folder) / "ground_truth.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("not a generated dataset: ground_truth.json is missing",
                         path=path) from None
    except (OSError, ValueError) as err:
        raise InputError(f"unreadable ({err})", path=path) from None


def is_complete(folder: str | Path, parameters: dict | None = None) -> bool:
    """Whether ``folder`` holds a whole generated dataset (of ``parameters`` and this
    generator version, when given): every file in its manifest, with the recorded size, and
    the recorded hash for the small ones."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("generator_version") != GENERATOR_VERSION:
        return False
    if parameters is not None and manifest.get("parameters") != parameters:
        return False
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return False
    for name, entry in files.items():
        path = folder / name
        try:
            if path.stat().st_size != entry["size"]:
                return False
            if "sha256" in entry and \
                    hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def data_dir() -> Path:
    """Where demo datasets are cached: ``$SPIKEVIZ_DATA_DIR``, else
    ``$XDG_CACHE_HOME/spikeviz`` (default ``~/.cache/spikeviz``)."""
    env = os.environ.get("SPIKEVIZ_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "spikeviz"


def demo_folder(seed: int = 0, duration_s: float = 60.0, num_channels: int = 64,
                num_units: int = 24, **kwargs) -> Path:
    """The demo dataset's folder, generated on first use and reused while complete.

    It lives in :func:`data_dir` as ``demo-<hash of parameters and generator version>``; a
    folder whose manifest does not match (other parameters, older generator, missing or
    damaged file) is regenerated.
    """
    parameters = _parameters(**{**_DEFAULTS, **kwargs, "seed": seed, "duration_s": duration_s,
                                "num_channels": num_channels, "num_units": num_units})
    key = hashlib.sha256(_dump_json({"generator_version": GENERATOR_VERSION,
                                     "parameters": parameters}).encode()).hexdigest()[:12]
    base = data_dir()
    folder = base / f"demo-{key}"
    if is_complete(folder, parameters):
        return folder
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot create the data folder ({err.strerror}); set "
                         f"SPIKEVIZ_DATA_DIR to a writable folder", path=base) from None
    if folder.exists() and not (folder / MANIFEST).is_file():
        shutil.rmtree(folder)  # our own cache entry (demo-<hash>), left incomplete
    try:
        generate_to_folder(folder, overwrite=folder.exists(), **parameters)
    except (InputError, OSError):
        if not is_complete(folder, parameters):  # else another process just made it
            raise
    return folder


def demo_session(seed: int = 0, duration_s: float = 60.0, num_channels: int = 64,
                 num_units: int = 24) -> Session:
    """The embedded default dataset of ``spikeviz demo``: the sorter output as a Session, with
    the raw recording in µV (``gain_to_uv`` in params.py) and the probe geometry."""
    return load(demo_folder(seed=seed, duration_s=duration_s, num_channels=num_channels,
                            num_units=num_units))


# generate()'s defaults, so that a demo's parameters (its cache key) are complete
_DEFAULTS = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
