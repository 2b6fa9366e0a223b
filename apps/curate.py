"""`panel serve apps/curate.py --warm --reuse-sessions warm --args PATH [--recording RAW]
[--sampling-frequency HZ]`.

The curation dashboard on a sorting. The paths come from ``--args`` only (never from the URL);
the session is loaded and warmed once per server process and shared by every browser session.

``--warm`` runs this script once at server start, so the load and warm-up (seconds on a
10 M-spike sorting) happen before the first page rather than in its request; ``--reuse-sessions
warm`` answers a page request at once from a session already rendered and builds the page's
own session while the browser loads its scripts. `spikeviz serve PATH` serves the same page,
bound to 127.0.0.1, with both done for you and one browser session kept built ahead of the
next page request (``spikeviz.app.serve.SessionPool``), which is faster still.
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
