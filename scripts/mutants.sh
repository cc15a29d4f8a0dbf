#!/usr/bin/env bash
# Mutation testing of the modules that decide what a vehicle trusts and installs (issue 29):
# cargo-mutants changes one decision at a time (a comparison, a returned value, a match arm)
# and runs the tests that guard it; a mutant no test notices ("missed") is a check only one
# path, or none, holds in place.
#
#   scripts/mutants.sh                 every group, every mutant (about an hour on 2 cores)
#   scripts/mutants.sh --shard K/N     the K-th of N slices of each group (CI: one slice a commit)
#   scripts/mutants.sh --list          the mutants, nothing run
#   scripts/mutants.sh --group ecu     only this group (ecu, metadata, gateway; repeatable)
#
# The missed mutants are compared with docs/mutants-survivors.txt (the README's proof section
# lists them): a survivor not listed fails the run (a decision lost its test), and so does a
# listed one now caught (the list must say what is true). Runs in a copy of the tree unless
# MUTANTS_IN_PLACE=1 (CI's clean checkout: the built target directory is reused).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v cargo-mutants >/dev/null || {
  # --debug: it compiles faster, and cargo-mutants spends its time waiting for cargo anyway.
  if [[ -n "${CI:-}" ]]; then cargo install --locked --debug cargo-mutants@27.1.0; else
    echo "cargo-mutants is missing: cargo install --locked cargo-mutants" >&2; exit 1; fi; }

shard=() list=0 only=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --shard) shard=(--shard "$2" --sharding round-robin); shift 2 ;;
    --list) list=1; shift ;;
    --group) only+=("$2"); shift 2 ;;
    *) echo "usage: scripts/mutants.sh [--shard K/N] [--list] [--group NAME]" >&2; exit 2 ;;
  esac
done

# Each group: the package whose tests run, then the mutants' regexes (file: function).
# The ECU's verifier: key sets and their thresholds, the same key counted once, the regulators'
# attestations, the ECU's own instruction, the release-counter floor, activation and revert.
ecu_re=(
  '^ecu/src/trust\.rs:.*\b(check_counts|same|accept|provision|read_set)\b'
  '^ecu/src/compact_manifest\.rs:.*\b(verify_threshold|parse_signatures)\b'
  '^ecu/src/attestation\.rs:.*\b(parse|verify)\b'
  '^ecu/src/instruction\.rs:.*\b(check|verify)\b'
  '^ecu/src/bootloader\.rs:.*\b(floor|request_download_encoded|hold_instruction|follow_instruction|activate|revert)\b'
)
# The metadata every party verifies: signature thresholds over distinct keys, the regulators
# counted as parties, the TUF trusted set's order of checks.
metadata_re=(
  '^metadata/src/envelope\.rs:.*\bverify_threshold\b'
  '^metadata/src/documents/regulators\.rs:.*\bcount_parties\b'
  '^metadata/src/trusted_set\.rs:.*\b(update_root|update_timestamp|update_snapshot|update_targets|update_delegated_targets|verify_extra_role|verify_delegated_targets|check_meta|check_expiry)\b'
)
# The gateway's judgement of the regulators' attestations (distinct parties, lifetimes, recalls).
gateway_re=(
  '^client/src/walk/attestations\.rs:.*\b(check_attestations_bundle|check_lifetime|runs_longer|shortfall|add|bytes|check_recall|veto)\b'
)

out="${MUTANTS_OUT:-target/mutants}"
mkdir -p "$out"
common=(--line-col false --no-times --timeout 300)
# MUTANTS_ITERATE=1: keep what an earlier run in the same output directory caught.
[[ "${MUTANTS_ITERATE:-0}" == 1 ]] && common+=(--iterate)
# In place (CI, after the test section passed on the same tree), the unmutated baseline is
# known to pass; in a copy it is run first, or every mutant would look caught by a broken build.
if [[ "${MUTANTS_IN_PLACE:-0}" == 1 ]]; then common+=(--in-place --baseline skip)
else common+=(-j "${MUTANTS_JOBS:-1}"); fi

run_group() { # name package regexes... -- test args...
  local name="$1" package="$2"; shift 2
  [[ ${#only[@]} -eq 0 || " ${only[*]} " == *" $name "* ]] || return 0
  local res=() files=()
  while [[ "$1" != -- ]]; do
    res+=(-F "$1"); files+=(-f "$(sed -E 's/^\^//; s/\\\././g; s/:.*//' <<<"$1")"); shift
  done
  shift
  if [[ "$list" == 1 ]]; then
    cargo mutants "${common[@]}" "${files[@]}" "${res[@]}" --list | sed "s|^|$name: |"
    return
  fi
  echo "== mutants: $name"
  cargo mutants "${common[@]}" "${shard[@]}" "${files[@]}" "${res[@]}" \
    --test-package "$package" -o "$out/$name" -- "$@" || true
  # cargo-mutants exits non-zero when a mutant is missed: judged below against the list.
  [[ -f "$out/$name/mutants.out/outcomes.json" ]] || { echo "mutants: $name did not run" >&2; exit 1; }
}

run_group ecu ota-ecu "${ecu_re[@]}" -- --lib --tests
run_group metadata ota-metadata "${metadata_re[@]}" -- --lib --tests
run_group gateway ota-client "${gateway_re[@]}" -- --lib --test trust_joints --test trust_model --test gateway_walk --test update_sets
[[ "$list" == 1 ]] && exit 0

full=()
[[ ${#shard[@]} -eq 0 && ${#only[@]} -eq 0 ]] && full=(--full)
python3 scripts/mutants-judge.py "$out" docs/mutants-survivors.txt "${full[@]}"
