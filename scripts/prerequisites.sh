#!/usr/bin/env bash
# What the tests need besides Rust, installed when missing (as root, with apt-get and pip), or
# named and refused: a test run never passes by skipping what it could not run.
#
# nginx serves the three parties' trees and clamscan is the regulator's real scanner
# (repo-gen/tests/three_parties.rs); openssl is the reference figure in the benchmarks;
# faketime runs ota-tuf-conformance at a fake date (conformance/tests/cli.rs). python-tuf (with
# pyca/cryptography for RSA-PSS) is the second independent reader of the three trees, beside
# tough (conformance/tests/python_tuf.rs); moto's standalone server is the S3-compatible store
# the upload tests send trees to (testkit/src/s3.rs). The quick benchmark runs need GNU time
# (peak RSS), valgrind (ECU instructions) and binutils' size (the firmware's sections).
# PostgreSQL's server (initdb, pg_ctl) runs the fleet backend's store tests on a real server
# (fleet/tests/store.rs, testkit/src/postgres.rs). qemu-system-arm runs the ECU firmware on an
# emulated Cortex-M4 (mps2-an386) that the real gateway updates (client/tests/qemu_ecu.rs).
# gcc-aarch64-linux-gnu (with the aarch64 C library) links the gateway for ARM Linux, and
# qemu-user's qemu-aarch64 runs it (client/tests/gateway_aarch64.rs). bsdiff, xdelta3 and
# detools (pip) are the delta benchmark's references (ecu/benches/delta.rs).
#
# OTA_NO_INSTALL=1: install nothing, only name what is missing.
set -euo pipefail

missing_programs() {
  local p
  for p in nginx clamscan openssl faketime valgrind size qemu-system-arm qemu-aarch64 aarch64-linux-gnu-gcc bsdiff xdelta3; do
    command -v "$p" >/dev/null || echo "$p"
  done
  [ -x /usr/bin/time ] || echo "/usr/bin/time (GNU time)"
  [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || echo "the aarch64 C library (libc6-dev-arm64-cross)"
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null \
    || echo "initdb (the PostgreSQL server)"
}
missing_python() {
  python3 -c 'import tuf.ngclient, cryptography' 2>/dev/null || echo "python-tuf (pip: tuf cryptography)"
  command -v moto_server >/dev/null || echo "moto_server (pip: moto[server])"
  python3 -c 'import detools' 2>/dev/null || echo "detools (pip: detools)"
}

can_install() {
  [ "${OTA_NO_INSTALL:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null
}

if [ -n "$(missing_programs)" ] && can_install; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get install -y nginx clamav openssl faketime time valgrind binutils postgresql \
    qemu-system-arm qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross bsdiff xdelta3
fi
if [ -n "$(missing_python)" ] && [ "${OTA_NO_INSTALL:-}" != 1 ]; then
  python3 -c 'import tuf.ngclient, cryptography' 2>/dev/null \
    || python3 -m pip install -q tuf cryptography || true
  command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]' || true
  python3 -c 'import detools' 2>/dev/null || python3 -m pip install -q detools || true
fi
still="$(missing_programs; missing_python)"
if [ -n "$still" ]; then
  echo "The tests need programs this machine lacks:" >&2
  while IFS= read -r line; do printf '  - %s\n' "$line" >&2; done <<< "$still"
  echo "Install them (Debian: apt-get install nginx clamav openssl faketime time valgrind binutils postgresql qemu-system-arm" >&2
  echo "qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross bsdiff xdelta3;" >&2
  echo "pip install tuf cryptography 'moto[server]' detools), or run this script as root to install them." >&2
  exit 1
fi
