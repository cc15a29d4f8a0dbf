#!/usr/bin/env bash
# Run every test of the workspace (the README's test command). What the tests need besides
# Rust is installed first, or named and refused (scripts/prerequisites.sh): with CI set, a test
# whose program is missing fails instead of skipping, so a green run means every test ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/prerequisites.sh
export CI="${CI:-true}"
# The ECU firmware the emulated-Cortex-M4 tests run under QEMU (client/tests/qemu_ecu.rs), and
# the two applications its bootloader starts on trial (ecu/qemu-app).
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || rustup target list --installed | grep -qx thumbv7em-none-eabihf \
  || { echo "the thumbv7em-none-eabihf Rust target is missing (rustup target add thumbv7em-none-eabihf)" >&2; exit 1; }
cargo build -q --locked -p ota-ecu-qemu -p ota-ecu-app --profile firmware --target thumbv7em-none-eabihf
# The gateway for ARM Linux, which client/tests/gateway_aarch64.rs runs under qemu-aarch64.
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || { echo "the aarch64-unknown-linux-gnu Rust target is missing (rustup target add aarch64-unknown-linux-gnu)" >&2; exit 1; }
cargo build -q --locked --release --target aarch64-unknown-linux-gnu -p ota-client --bin ota-gateway
cargo test --workspace --locked --no-fail-fast "$@"
