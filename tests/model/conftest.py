"""Fixtures shared by the model tests: generated data held in memory."""

from __future__ import annotations

import numpy as np
import pytest

from spikeviz.datasets import generate
from spikeviz.model.recording import Recording
from spikeviz.model.session import Session


@pytest.fixture(scope="module")
def data():
    """(sorting, recording): 8 s, 16 channels, 6 generated units, traces in memory."""
    gt = generate(duration_s=8, num_channels=16, num_units=6, seed=5)
    rec = gt.recording()
    traces = np.asarray(rec.traces(0, rec.num_samples, scaled=False))
    memory = Recording.from_array(traces, rec.sampling_frequency,
                                  channel_locations=rec.channel_locations_um,
                                  gains_to_uv=rec.gains_to_uv)
    return gt.sorter_output.sorting, memory


@pytest.fixture
def session(data):
    sorting, rec = data
    return Session(sorting, recording=rec, cache_dir=None)
