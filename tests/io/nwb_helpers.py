"""Shared by the NWB tests: open a file with pynwb, quietly."""

import warnings


def open_nwb(path):
    """``(io, nwbfile)`` read with pynwb, its warnings about unrelated objects silenced; the
    caller closes ``io`` (``with io:``)."""
    from pynwb import NWBHDF5IO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        io = NWBHDF5IO(str(path), "r")
        return io, io.read()
