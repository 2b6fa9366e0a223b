"""Shared fixtures: where the real data lives, seeded random sortings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test saying why."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real test data not found at {path} (../shared/data beside the checkout "
                    f"is only present in the project's workspace)")
    return path


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_spikes(rng, num_spikes=5000, num_units=7, num_samples=3_000_000):
    """Unsorted random spike times (int64 samples) and unit indices (int32)."""
    times = rng.integers(0, num_samples, num_spikes).astype(np.int64)
    units = rng.integers(0, num_units, num_spikes).astype(np.int32)
    return times, units
