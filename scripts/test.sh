#!/usr/bin/env bash
# Run every test of the workspace (the README's test command).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo test --workspace --locked --no-fail-fast "$@"
