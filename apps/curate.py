"""`panel serve apps/curate.py --args PATH [--recording RAW] [--sampling-frequency HZ]`.

The curation dashboard on a sorting. The paths come from ``--args`` only (never from the URL);
the session is loaded and warmed once per server process and shared by every browser session.
(`spikeviz serve PATH` serves the same page, bound to 127.0.0.1.)
"""

import argparse
import sys

from spikeviz.app import build_dashboard
from spikeviz.app.serve import shared_session

parser = argparse.ArgumentParser(prog="panel serve apps/curate.py --args")
parser.add_argument("path")
parser.add_argument("--recording", default=None)
parser.add_argument("--sampling-frequency", type=float, default=None)
args = parser.parse_args(sys.argv[1:])
session = shared_session(args.path, recording=args.recording,
                         sampling_frequency=args.sampling_frequency)
build_dashboard(session).servable()
