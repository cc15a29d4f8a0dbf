#!/usr/bin/env bash
# Regenerate the sample trees: sample-repo/generate.sh [OUT_DIR]
#
# Makes (or reuses) TEST-ONLY keys in OUT_DIR/keys/, then rebuilds from scratch:
#   OUT_DIR/supplier/acme/   a supplier image repository with three images and a tier-2
#                            delegation ("brakes-tier2") that signs one more;
# and checks every tree with `ota-repo verify` pinned to its first root.
#
# The keys are for tests and demos only: they are committed to a public repository.
# Never use them, or trees signed with them, for anything real.
#
# Set OTA_REPO to an ota-repo binary to skip building it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [[ -z "${OTA_REPO:-}" ]]; then
  cargo build -q --manifest-path "$here/../Cargo.toml" -p ota-repo
  OTA_REPO="$here/../target/debug/ota-repo"
fi
ota() { "$OTA_REPO" "$@"; }

keys="$out/keys"
mkdir -p "$keys"
cat > "$keys/README.md" <<'TXT'
# TEST-ONLY keys

These private keys are published on purpose so that anyone can rebuild and extend the sample
trees. They protect nothing. Never trust them, or anything they signed, outside tests and demos.
TXT
key() {
  local f="$keys/$1.TEST-ONLY.pem"
  [[ -f "$f" ]] || ota key generate --bits 3072 --out "$f" >/dev/null
  echo "$f"
}

# Long lifetimes so the committed sample keeps verifying; real repositories keep the defaults.
lifetimes=(--expires root=3650d --expires targets=3650d --expires snapshot=3650d --expires timestamp=3650d)

work="$out/supplier/acme"
rm -rf "$work"
mkdir -p "$out/supplier" "$out/images"
ota supplier init "$work" --name acme \
  --root-key "$(key acme-root)" --targets-key "$(key acme-targets)" \
  --snapshot-key "$(key acme-snapshot)" --timestamp-key "$(key acme-timestamp)" \
  "${lifetimes[@]}" >/dev/null

image() { # NAME SIZE TEXT: a deterministic stand-in for a firmware image
  yes "$3" | head -c "$2" > "$out/images/$1"
  echo "$out/images/$1"
}
ota supplier add-image "$work" --file "$(image brake-1.0.0.bin 65536 'brake controller 1.0.0')" \
  --uid brake-fw --version 1.0.0 --release-counter 1 --hardware-id BRAKE-A --hardware-id BRAKE-B >/dev/null
ota supplier add-image "$work" --file "$(image brake-1.1.0.bin 70000 'brake controller 1.1.0')" \
  --uid brake-fw --version 1.1.0 --release-counter 2 --hardware-id BRAKE-A --hardware-id BRAKE-B >/dev/null
ota supplier add-image "$work" --file "$(image infotainment-5.2.bin 200000 'infotainment 5.2')" \
  --uid infotainment --version 5.2 --release-counter 7 --hardware-id HU-GEN3 >/dev/null
ota supplier delegate "$work" --to brakes-tier2 --key "$(key brakes-tier2)" \
  --hardware-id ABS-MOD-1 --expires 3650d >/dev/null
ota supplier add-image "$work" --file "$(image abs-3.0.bin 32768 'abs module 3.0')" \
  --uid abs-fw --version 3.0 --release-counter 3 --hardware-id ABS-MOD-1 --role brakes-tier2 >/dev/null
ota supplier publish "$work" >/dev/null

# Settings hold absolute key paths; store them relative to the sample for a portable checkout.
sed -i "s#\"$out/#\"../../#g" "$work/ota-repo.json"

ota verify "$work/repository" --root "$work/repository/1.root.json"
