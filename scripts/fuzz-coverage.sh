#!/usr/bin/env bash
# How much of each fuzz target's parser its inputs reach: line coverage (llvm-cov, from an
# `-C instrument-coverage` build of ota-fuzz) of the source files each target reads with,
# once from the seeds alone and once with the AFL++ corpus kept in fuzz/corpus/TARGET/
# (scripts/fuzz-afl.sh), so the table shows what coverage-guided fuzzing added.
#
#   scripts/fuzz-coverage.sh              every target
#   scripts/fuzz-coverage.sh uds delta    some
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)

# The parser behind each target (what "coverage of its parser" counts).
declare -A parser=(
  [metadata]="metadata/src/envelope.rs metadata/src/canonical.rs metadata/src/trusted_set.rs metadata/src/roles metadata/src/time.rs metadata/src/documents/vehicles.rs"
  [compact-manifest]="ecu/src/compact_manifest.rs"
  [isotp]="ecu/src/isotp"
  [uds]="ecu/src/uds.rs ecu/src/bootloader.rs"
  [ecu-trust]="ecu/src/trust.rs ecu/src/attestation.rs"
  [gateway-config]="client/src/config.rs"
  [image-crypt]="crypt/src"
  [serial-line]="ecu/src/slcan.rs ecu/src/factory.rs"
  [elf]="ecu/src/elf.rs"
  [delta]="ecu/src/delta.rs"
)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(metadata compact-manifest isotp uds ecu-trust gateway-config image-crypt serial-line elf delta)

llvm="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | awk '/^host/ { print $2 }')/bin"
if [[ ! -x "$llvm/llvm-cov" ]]; then
  rustup component add llvm-tools-preview || { echo "llvm-cov is missing: rustup component add llvm-tools-preview" >&2; exit 1; }
fi
# The build scripts are instrumented too: their profiles go with the rest, not into the tree.
LLVM_PROFILE_FILE="$root/target/coverage/build-%p.profraw" RUSTFLAGS="-C instrument-coverage" cargo build --release --locked -q -p ota-fuzz --target-dir target/coverage
bin=target/coverage/release/ota-fuzz
work=target/coverage/runs
rm -rf "$work"
mkdir -p "$work/no-corpus"

lines_covered() { # profdata files... -> "covered/total (pct%)"
  local profdata="$1"; shift
  "$llvm/llvm-cov" report "$bin" -instr-profile="$profdata" "$@" 2>/dev/null \
    | awk '$1 == "TOTAL" { lines = $(NF-5); missed = $(NF-4); printf "%d/%d (%s)", lines - missed, lines, $(NF-3) }'
}

echo "| target | parser | lines reached by the seeds | with the AFL++ corpus | corpus inputs |"
echo "|---|---|---|---|---|"
for t in "${targets[@]}"; do
  [[ -n "${parser[$t]:-}" ]] || { echo "fuzz-coverage: no target $t" >&2; exit 2; }
  files=()
  for p in ${parser[$t]}; do
    if [[ -d "$p" ]]; then mapfile -t -O "${#files[@]}" files < <(find "$root/$p" -name '*.rs' | sort)
    else files+=("$root/$p"); fi
  done
  for mode in seeds corpus; do
    corpus=fuzz/corpus
    [[ "$mode" == seeds ]] && corpus="$work/no-corpus"
    LLVM_PROFILE_FILE="$work/$t-$mode-%p.profraw" "$bin" --seconds 0 --target "$t" --corpus "$corpus" > /dev/null
    "$llvm/llvm-profdata" merge -sparse "$work/$t-$mode"-*.profraw -o "$work/$t-$mode.profdata" 2>/dev/null
  done
  echo "| $t | ${parser[$t]} | $(lines_covered "$work/$t-seeds.profdata" "${files[@]}") | $(lines_covered "$work/$t-corpus.profdata" "${files[@]}") | $(ls fuzz/corpus/"$t" 2>/dev/null | wc -l) |"
done
