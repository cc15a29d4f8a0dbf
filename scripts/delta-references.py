#!/usr/bin/env python3
"""Reference delta sizes for one OLD/NEW pair, to compare our own deltas with.

Usage: delta-references.py OLD NEW [WORKDIR]
           [--window-sz2 N] [--lookahead-sz2 N]

Runs
  * detools (PyPI), sequential patch, heatshrink compression: the
    microcontroller setting (detools defaults: window_sz2=8, lookahead_sz2=7);
  * bsdiff OLD NEW PATCH (Debian package bsdiff, bzip2-compressed);
  * xdelta3 -e -9 -s OLD NEW PATCH (Debian package xdelta3);
  * heatshrink of NEW alone with the same window/lookahead (heatshrink2, which
    detools depends on), i.e. the "no delta, just compress" baseline;
checks that every patch reproduces NEW, and prints one JSON object:
  {"detools_sequential_heatshrink": bytes, "bsdiff": bytes, "xdelta3": bytes,
   "heatshrink_full": bytes | null, "detools_params": {...},
   "new_bytes": n, "old_bytes": n, "seconds": {tool: create time}}
Exits non-zero, naming the tool, if one is missing or fails.
Needs only the standard library and detools.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def die(msg):
    print(f"delta-references: {msg}", file=sys.stderr)
    sys.exit(1)


def run(tool, argv):
    if shutil.which(argv[0]) is None:
        die(f"missing tool: {tool} ({argv[0]} not on PATH)")
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        die(f"{tool} failed ({' '.join(argv)}): {proc.stderr.decode(errors='replace').strip()}")
    return elapsed


def same(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("workdir", nargs="?", help="keep patches here (default: temp dir)")
    ap.add_argument("--window-sz2", type=int, default=8)
    ap.add_argument("--lookahead-sz2", type=int, default=7)
    args = ap.parse_args()
    # heatshrink limits; window_sz2=15 never finishes in heatshrink2 0.15.0.
    if not (4 <= args.window_sz2 <= 14 and 3 <= args.lookahead_sz2 < args.window_sz2):
        die("need 4 <= window_sz2 <= 14 and 3 <= lookahead_sz2 < window_sz2")

    try:
        import detools
    except ImportError:
        die("missing tool: detools (pip install detools)")

    workdir = args.workdir or tempfile.mkdtemp(prefix="delta-ref-")
    os.makedirs(workdir, exist_ok=True)
    p = lambda name: os.path.join(workdir, name)
    seconds = {}

    # detools, sequential + heatshrink, via its Python API.
    params = {
        "version": detools.__version__,
        "patch_type": "sequential",
        "algorithm": "bsdiff",
        "suffix_array_algorithm": "divsufsort",
        "compression": "heatshrink",
        "heatshrink_window_sz2": args.window_sz2,
        "heatshrink_lookahead_sz2": args.lookahead_sz2,
    }
    start = time.perf_counter()
    try:
        detools.create_patch_filenames(
            args.old, args.new, p("detools.patch"),
            compression="heatshrink", patch_type="sequential",
            algorithm="bsdiff", suffix_array_algorithm="divsufsort",
            heatshrink_window_sz2=args.window_sz2,
            heatshrink_lookahead_sz2=args.lookahead_sz2)
    except Exception as e:  # noqa: BLE001 - report any detools failure
        die(f"detools failed: {e!r}")
    seconds["detools_sequential_heatshrink"] = time.perf_counter() - start
    try:
        detools.apply_patch_filenames(args.old, p("detools.patch"), p("detools.out"))
    except Exception as e:  # noqa: BLE001
        die(f"detools apply_patch failed: {e!r}")
    if not same(p("detools.out"), args.new):
        die("detools patch does not reproduce NEW")

    seconds["bsdiff"] = run("bsdiff", ["bsdiff", args.old, args.new, p("bsdiff.patch")])
    run("bspatch", ["bspatch", args.old, p("bsdiff.out"), p("bsdiff.patch")])
    if not same(p("bsdiff.out"), args.new):
        die("bsdiff patch does not reproduce NEW")

    seconds["xdelta3"] = run("xdelta3", ["xdelta3", "-e", "-9", "-f", "-s",
                                         args.old, args.new, p("xdelta3.patch")])
    run("xdelta3", ["xdelta3", "-d", "-f", "-s", args.old, p("xdelta3.patch"), p("xdelta3.out")])
    if not same(p("xdelta3.out"), args.new):
        die("xdelta3 patch does not reproduce NEW")

    # Heatshrink of NEW alone, same parameters as the detools patch (raw
    # stream, no detools header byte).
    heatshrink_full = None
    try:
        import heatshrink2
    except ImportError:
        heatshrink2 = None
    if heatshrink2 is not None:
        with open(args.new, "rb") as f:
            data = f.read()
        start = time.perf_counter()
        heatshrink_full = len(heatshrink2.compress(
            data, window_sz2=args.window_sz2, lookahead_sz2=args.lookahead_sz2))
        seconds["heatshrink_full"] = time.perf_counter() - start

    result = {
        "detools_sequential_heatshrink": os.path.getsize(p("detools.patch")),
        "bsdiff": os.path.getsize(p("bsdiff.patch")),
        "xdelta3": os.path.getsize(p("xdelta3.patch")),
        "heatshrink_full": heatshrink_full,
        "detools_params": params,
        "old_bytes": os.path.getsize(args.old),
        "new_bytes": os.path.getsize(args.new),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    for name in ("detools.out", "bsdiff.out", "xdelta3.out"):
        os.remove(p(name))
    if not args.workdir:
        shutil.rmtree(workdir)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
