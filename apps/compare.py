"""`panel serve apps/compare.py --args A B [--ground-truth] [--exhaustive-gt] [--delta-ms MS]
[--sampling-frequency HZ]`.

The comparison dashboard of two sortings (A the ground truth with --ground-truth). The paths
come from ``--args`` only (never from the URL); the comparison is built and warmed once per
server process and shared by every browser session. (`spikeviz compare A B --serve` serves
the same page, bound to 127.0.0.1.)
"""

import argparse
import sys

from spikeviz.app.compare_app import build_compare_app, shared_comparison

parser = argparse.ArgumentParser(prog="panel serve apps/compare.py --args")
parser.add_argument("a")
parser.add_argument("b")
parser.add_argument("--ground-truth", action="store_true")
parser.add_argument("--exhaustive-gt", action="store_true")
parser.add_argument("--delta-ms", type=float, default=0.4)
parser.add_argument("--sampling-frequency", type=float, default=None)
args = parser.parse_args(sys.argv[1:])
comparison = shared_comparison(args.a, args.b, ground_truth=args.ground_truth,
                               exhaustive_gt=args.exhaustive_gt, delta_ms=args.delta_ms,
                               sampling_frequency=args.sampling_frequency)
build_compare_app(comparison).servable()
