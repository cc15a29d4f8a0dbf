#!/usr/bin/env bash
# Run every test of the workspace (the README's test command). What the tests need besides
# Rust is installed first, or named and refused (scripts/prerequisites.sh): with CI set, a test
# whose program is missing fails instead of skipping, so a green run means every test ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/prerequisites.sh
export CI="${CI:-true}"
cargo test --workspace --locked --no-fail-fast "$@"
