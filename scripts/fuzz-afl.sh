#!/usr/bin/env bash
# Coverage-guided fuzzing of every `ota-fuzz` target with AFL++ (through `cargo afl`, on the
# stable toolchain), growing the corpus kept in fuzz/corpus/TARGET/.
#
#   scripts/fuzz-afl.sh                      every target, 300 s each
#   scripts/fuzz-afl.sh --seconds 60 uds     one target, 60 s
#
# Each target starts from its seeds (`ota-fuzz --write-seeds`) and the corpus kept so far; what
# AFL++ keeps is minimized (afl-cmin: the fewest inputs that reach the same edges), the seeds
# themselves dropped (ota-fuzz makes them every run), and the rest written back to
# fuzz/corpus/TARGET/, which `ota-fuzz` (so CI) replays and mutates on every run. A crash is
# written to target/fuzz-crashes/ and fails the run. scripts/fuzz-coverage.sh measures what
# the corpus adds to each target's coverage of its parser.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=300 targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) secs="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "usage: scripts/fuzz-afl.sh [--seconds N] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done

# cargo-afl must be the release of the `afl` crate the lock file names.
afl_version=$(awk '/^name = "afl"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! cargo afl --version 2>/dev/null | grep -q "$afl_version"; then
  cargo install --locked --force "cargo-afl@$afl_version"
fi
cargo afl config --build 2>/dev/null || true # AFL++ itself, once per toolchain
cargo afl build --release --locked -q -p ota-fuzz --features afl --bin ota-fuzz-afl --target-dir target/afl
cargo build --release --locked -q -p ota-fuzz
harness=target/afl/release/ota-fuzz-afl

work=target/afl-runs
rm -rf "$work"
mkdir -p "$work/out" "$work/min"
target_args=()
for t in "${targets[@]}"; do target_args+=(--target "$t"); done
target/release/ota-fuzz --write-seeds "$work/seeds" "${target_args[@]}"
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(ls "$work/seeds")

# A run without a terminal, on a machine not tuned for fuzzing (no CPU governor, crashes
# piped to a handler): AFL++ is told so rather than refusing to start.
export AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
failed=0
echo "| target | seconds | executions | per second | edges found | kept corpus | crashes | hangs |"
echo "|---|---|---|---|---|---|---|---|"
for t in "${targets[@]}"; do
  in="$work/in/$t"
  mkdir -p "$in" "fuzz/corpus/$t"
  cp "$work/seeds/$t"/* "$in"/
  cp "fuzz/corpus/$t"/* "$in"/ 2>/dev/null || true
  out="$work/out/$t"
  if ! cargo afl fuzz -V "$secs" -t 1000 -i "$in" -o "$out" -- "$harness" "$t" > "$work/$t.log" 2>&1; then
    tail -20 "$work/$t.log"; echo "fuzz-afl: AFL++ failed on $t" >&2; exit 1
  fi
  crashes=$(find "$out/default/crashes" -name 'id:*' | wc -l)
  hangs=$(find "$out/default/hangs" -name 'id:*' | wc -l)
  if [[ "$crashes" -gt 0 ]]; then
    mkdir -p target/fuzz-crashes
    for c in "$out"/default/crashes/id:*; do cp "$c" "target/fuzz-crashes/afl-$t-$(sha256sum "$c" | cut -c1-16).bin"; done
    failed=1
  fi
  # The fewest inputs reaching the same edges, the seeds left out, named by content.
  cargo afl cmin -i "$out/default/queue" -o "$work/min/$t" -- "$harness" "$t" > "$work/$t.cmin.log" 2>&1 \
    || { tail -20 "$work/$t.cmin.log"; echo "fuzz-afl: afl-cmin failed on $t" >&2; exit 1; }
  rm -f "fuzz/corpus/$t"/*
  for f in "$work/min/$t"/*; do
    sum=$(sha256sum "$f" | cut -c1-16)
    if ! sha256sum "$work/seeds/$t"/* | grep -q "^$sum"; then cp "$f" "fuzz/corpus/$t/$sum"; fi
  done
  stat() { awk -v k="$1" '$1 == k { print $3 }' "$out/default/fuzzer_stats"; }
  echo "| $t | $secs | $(stat execs_done) | $(stat execs_per_sec) | $(stat edges_found) | $(ls "fuzz/corpus/$t" | wc -l) | $crashes | $hangs |"
done
if [[ "$failed" == 1 ]]; then
  echo "fuzz-afl: crashes written to target/fuzz-crashes/ (fix, then move each to fuzz/regressions/TARGET/)" >&2
  exit 1
fi
