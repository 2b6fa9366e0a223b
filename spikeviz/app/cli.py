"""The ``spikeviz`` command line.

Errors in the input are printed as one readable line on stderr with exit code 2 (a traceback
only with ``--debug``). Panel is imported only by the commands that serve a dashboard.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..errors import SpikevizError
from .formatting import format_clock

EXIT_BAD_INPUT = 2


def _add_reader_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampling-frequency", type=float, default=None, metavar="HZ",
                   help="sampling rate in Hz when the files do not say it")
    p.add_argument("--recording", default=None, metavar="RAW",
                   help="raw recording (.bin/.dat, SpikeGLX .bin with .meta) to pair with it")
    p.add_argument("--num-channels", type=int, default=None,
                   help="channel count of a raw binary file")
    p.add_argument("--dtype", default=None, help="sample dtype of a raw binary file (int16)")
    p.add_argument("--offset", type=int, default=None,
                   help="header bytes before the samples of a raw binary file")


def _reader_kwargs(args) -> dict:
    kwargs = {}
    for name in ("num_channels", "dtype", "offset"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    return kwargs


def _load(args):
    from .. import load

    return load(args.path, sampling_frequency=args.sampling_frequency,
                recording=args.recording, **_reader_kwargs(args))


def cmd_info(args) -> int:
    session = _load(args)
    info = session.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    labels = ", ".join(f"{k} {v}" for k, v in info["labels"].items()) or "no units"
    rec = session.recording
    rows = [
        ("format", info["format"]),
        ("units", f"{info['num_units']:,}  ({labels})"),
        ("spikes", f"{info['num_spikes']:,}"),
        ("sampling rate", f"{info['sampling_frequency']:g} Hz"),
        ("duration", f"{info['duration_s']:.3f} s ({format_clock(info['duration_s'])})"),
        ("channels", "unknown" if info["num_channels"] is None else info["num_channels"]),
        ("recording", "none" if rec is None else
         f"{rec.source} ({rec.num_channels} channels, {rec.dtype}, {rec.duration_s:.3f} s)"),
        ("unit properties", ", ".join(info["unit_properties"]) or "none"),
    ]
    print(info["source"])
    for key, value in rows:
        print(f"  {key:<16}{value}")
    return 0


def cmd_generate(args) -> int:
    from ..datasets import generate_to_folder

    out = generate_to_folder(args.out, duration_s=args.duration, num_channels=args.channels,
                             num_units=args.units, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


def cmd_precompute(args) -> int:
    from ..model import steps, steps_metrics  # noqa: F401 (registers the results)
    from ..model.analysis import STEPS
    from .precompute import run

    session = _load(args)
    names = None
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        if not names:
            raise SpikevizError("--only needs at least one result name; known: "
                                f"{', '.join(sorted(STEPS))}")
        unknown = [n for n in names if n not in STEPS]
        if unknown:
            raise SpikevizError(f"unknown result(s) {', '.join(unknown)} for --only; known: "
                                f"{', '.join(sorted(STEPS))}")
    run(session, names=names, jobs=args.jobs, progress=not args.quiet)
    return 0


def cmd_convert(args) -> int:
    from .convert import options, run, target_format

    fmt = target_format(args.dst, args.to)
    kwargs = options(args, fmt)  # refuse misplaced options before reading anything
    args.path = args.src
    session = _load(args)
    run(session, args.dst, fmt, kwargs, overwrite=args.overwrite, compute=args.compute,
        progress=not args.quiet)
    return 0


def _compare_text(summary: dict) -> list[str]:
    """The lines ``spikeviz compare`` prints for a :meth:`Comparison.summary`."""
    gt = summary["ground_truth"]
    kinds = ("ground truth", "tested") if gt else ("sorting 1", "sorting 2")

    def side(k):
        return (f"{kinds[k - 1]:<16}{summary['names'][k - 1]}: {summary[f'num_units{k}']:,} "
                f"units, {summary[f'num_spikes{k}']:,} spikes")

    mean = summary["mean_agreement_matched"]
    lines = [side(1), side(2),
             f"{'coincidence':<16}{summary['delta_ms']:g} ms ({summary['delta_samples']} "
             f"samples at {summary['sampling_frequency']:g} Hz)",
             f"{'matched units':<16}{summary['num_matched']:,} (Hungarian)",
             f"{'mean agreement':<16}" + ("n/a" if mean is None else f"{mean:.3f}") +
             " (matched pairs)"]
    if gt:
        for key, value in summary["category_counts"].items():
            if key not in ("num_gt", "num_sorter"):
                lines.append(f"{key.removeprefix('num_').replace('_', ' '):<16}{value:,}")
        for name in ("accuracy", "recall", "precision"):
            value = summary[f"mean_{name}"]
            lines.append(f"{'mean ' + name:<16}" + ("n/a" if value is None else f"{value:.3f}"))
    return lines


def cmd_compare(args) -> int:
    from pathlib import Path

    from .. import compare, load
    from ..atomic import atomic_file

    sessions = [load(p, sampling_frequency=args.sampling_frequency) for p in (args.a, args.b)]
    names = [Path(p).name or str(p) for p in (args.a, args.b)]
    if names[0] == names[1]:
        names = [str(args.a), str(args.b)]
    comparison = compare(*sessions, delta_ms=args.delta_ms, ground_truth=args.ground_truth,
                         names=names, exhaustive_gt=args.exhaustive_gt)
    if args.json is not None:
        small = comparison.sorting1.num_units * comparison.sorting2.num_units <= 10_000
        text = json.dumps(comparison.to_json(), indent=1 if small else None, allow_nan=False)
        if args.json == "-":
            print(text)
            return _serve_comparison(comparison, args) if args.serve else 0
        with atomic_file(args.json, overwrite=True) as tmp:
            tmp.write_text(text + "\n")
    for line in _compare_text(comparison.summary()):
        print(f"  {line}")
    if args.json is not None:
        print(f"wrote {args.json}")
    return _serve_comparison(comparison, args) if args.serve else 0


def _serve_comparison(comparison, args) -> int:
    """``spikeviz compare ... --serve``: the comparison dashboard on --address:--port."""
    from .compare_app import serve_comparison

    serve_comparison(comparison, port=args.port, address=args.address, show=args.show,
                     allow_websocket_origin=args.allow_websocket_origin)
    return 0


def _serve(factory, args) -> int:
    from .serve import serve

    serve(factory, port=args.port, address=args.address, show=args.show,
          allow_websocket_origin=args.allow_websocket_origin)
    return 0


def cmd_demo(args) -> int:
    from ..datasets import demo_session

    return _serve(lambda: demo_session(), args)


def cmd_serve(args) -> int:
    session = _load(args)  # fail fast, before the server starts
    return _serve(lambda: session, args)


def _add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only)")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    p.add_argument("--allow-websocket-origin", action="append", default=[], metavar="HOST[:PORT]",
                   help="also accept pages served as HOST (e.g. behind a proxy); repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeviz", description="Interactive analysis and curation of spike sortings.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"spikeviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="serve the dashboard on the synthetic dataset")
    _add_server_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="serve the dashboard on a sorting")
    p.add_argument("path", help="Phy/KiloSort folder, .npz sorting, SpikeGLX .bin, ...")
    _add_reader_options(p)
    _add_server_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("info", help="summarise a sorting or recording")
    p.add_argument("path")
    _add_reader_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("precompute",
                       help="compute templates, amplitudes, metrics, ... once into the cache")
    p.add_argument("path")
    _add_reader_options(p)
    p.add_argument("--jobs", type=int, default=1, help="threads for chunked work (default 1)")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma-separated results (default: what the views need)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser("convert", help="write a sorting as NWB, HDF5 or a Phy folder")
    p.add_argument("src", help="anything spikeviz reads")
    p.add_argument("dst", help="output file (.nwb, .h5) or folder (phy)")
    p.add_argument("--to", choices=("nwb", "phy", "hdf5"), default=None,
                   help="output format (default: from DST's suffix; a folder means phy)")
    _add_reader_options(p)
    p.add_argument("--style", choices=("ragged", "raster", "group", "paired"), default=None,
                   help="HDF5 layout (default ragged)")
    p.add_argument("--time-unit", choices=("s", "ms", "samples"), default=None,
                   help="HDF5 time unit (default s)")
    p.add_argument("--bin-ms", type=float, default=None,
                   help="bin width of the HDF5 raster style, ms (default 1)")
    p.add_argument("--metadata", default=None, metavar="META.yaml",
                   help="NWB metadata (YAML/JSON shaped like neuroconv's: NWBFile, Subject, "
                        "Ecephys)")
    p.add_argument("--include-recording", action="store_true",
                   help="NWB: write the raw traces too (compressed, chunk by chunk)")
    p.add_argument("--raw", choices=("link", "copy", "none"), default=None,
                   help="Phy: point dat_path at the raw file (link, default), copy it into "
                        "the folder, or leave it out")
    p.add_argument("--compute", action="store_true",
                   help="compute missing templates/metrics/amplitudes first (default: "
                        "include only what is already computed or cached)")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("compare", help="compare two sortings (or ground truth and a sorter)")
    p.add_argument("a", help="first sorting (the ground truth with --ground-truth)")
    p.add_argument("b", help="second sorting (the tested one)")
    p.add_argument("--ground-truth", action="store_true",
                   help="A is the ground truth: performance per unit and unit categories")
    p.add_argument("--exhaustive-gt", action="store_true",
                   help="the ground truth holds every real unit (counts false positive, "
                        "redundant, overmerged and bad units)")
    p.add_argument("--delta-ms", type=float, default=0.4,
                   help="spikes this close coincide, ms (default 0.4)")
    p.add_argument("--sampling-frequency", type=float, default=None, metavar="HZ",
                   help="sampling rate in Hz when the files do not say it")
    p.add_argument("--json", default=None, metavar="OUT",
                   help="write matches, agreement (and performance) as JSON; - for stdout")
    p.add_argument("--serve", action="store_true",
                   help="then serve the comparison dashboard (Ctrl+C to stop)")
    _add_server_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("generate", help="write a synthetic ground-truth dataset (Phy folder)")
    p.add_argument("out", help="output folder")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--channels", type=int, default=64, help="channels (default 64)")
    p.add_argument("--units", type=int, default=20, help="ground-truth units (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_generate)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"spikeviz: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = warnings.showwarning
    if not args.debug:
        warnings.showwarning = _show_warning  # one readable line per warning
    try:
        return args.func(args)
    except MemoryError:
        if args.debug:
            raise
        print("spikeviz: error: not enough memory for this request (a shorter duration or "
              "fewer channels/units?)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (SpikevizError, KeyError, FileNotFoundError) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"spikeviz: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of our output went away (`spikeviz info | head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # an unexpected failure: still one line unless --debug
        if args.debug:
            raise
        print(f"spikeviz: unexpected error ({type(err).__name__}): {err} "
              f"(run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
