#!/usr/bin/env python3
"""Judge a mutation run (scripts/mutants.sh) against the listed survivors.

usage: mutants-judge.py OUT_DIR SURVIVORS_FILE [--full]

Each group's cargo-mutants outcomes (OUT_DIR/<group>/mutants.out/outcomes.json) are read; a
mutant is named "group: file: what it changes in function" (no line numbers, so the list
survives edits elsewhere in a file). Fails when a mutant is missed more often than the list
says (a decision lost its test). With --full (every mutant ran) it also fails when a listed
mutant is now caught, so the README's list says what is true.
"""
import collections
import json
import pathlib
import re
import sys

LINE_COL = re.compile(r"^([^:]+):\d+:\d+: ")


def key(group, name):
    return group + ": " + LINE_COL.sub(r"\1: ", name)


def outcomes(out):
    missed, caught, counts = collections.Counter(), collections.Counter(), collections.Counter()
    groups = sorted(p for p in out.iterdir() if (p / "mutants.out" / "outcomes.json").is_file())
    if not groups:
        sys.exit(f"mutants: no outcomes under {out}")
    for g in groups:
        data = json.loads((g / "mutants.out" / "outcomes.json").read_text())
        for o in data["outcomes"]:
            scenario = o["scenario"]
            if scenario == "Baseline":
                if o["summary"] != "Success":
                    sys.exit(f"mutants: the unmutated baseline of {g.name} failed: nothing judged")
                continue
            k = key(g.name, scenario["Mutant"]["name"])
            counts[o["summary"]] += 1
            if o["summary"] == "MissedMutant":
                missed[k] += 1
            elif o["summary"] in ("CaughtMutant", "Timeout"):
                caught[k] += 1
    return missed, caught, counts


def listed(path):
    lines = pathlib.Path(path).read_text().splitlines()
    return collections.Counter(l for l in lines if l.strip() and not l.startswith("#"))


def main():
    args = [a for a in sys.argv[1:] if a != "--full"]
    full = "--full" in sys.argv[1:]
    if len(args) != 2:
        sys.exit(__doc__)
    missed, caught, counts = outcomes(pathlib.Path(args[0]))
    allowed = listed(args[1])
    print("mutants: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    new = {k: n - allowed[k] for k, n in missed.items() if n > allowed[k]}
    gone = {k: allowed[k] - missed[k] for k in allowed if missed[k] < allowed[k] and caught[k]}
    for k in sorted(missed):
        print(f"  survived: {k}" + ("" if k not in new else "   <- NOT LISTED"))
    for k in sorted(gone):
        print(f"  now caught: {k}" + ("   <- remove it from the list" if full else ""))
    if new:
        sys.exit(f"mutants: {sum(new.values())} survivor(s) not in {args[1]}: a decision lost its test")
    if full and gone:
        sys.exit(f"mutants: {sum(gone.values())} listed survivor(s) now caught: update {args[1]}")
    print(f"mutants: every survivor is listed in {args[1]}")


if __name__ == "__main__":
    main()
