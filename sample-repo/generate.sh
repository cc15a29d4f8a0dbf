#!/usr/bin/env bash
# Regenerate the sample trees: sample-repo/generate.sh [OUT_DIR]
#
# Makes (or reuses) TEST-ONLY keys in OUT_DIR/keys/, then rebuilds from scratch:
#   OUT_DIR/supplier/acme/   a supplier image repository: four images, and a tier-2
#                            delegation ("brakes-tier2") that signs one more;
#   OUT_DIR/oem/             the OEM master repository: acme pinned, regulator "tuv"
#                            authorized, every image sent for review, three vehicles assigned;
#   OUT_DIR/regulator/tuv/   the regulator's attestations: approved, and rejected (a known-
#                            vulnerable build, and one with a backdoor marker);
#   OUT_DIR/vehicles/        each vehicle's secret, as its gateway is provisioned;
# and checks every tree with `ota-repo verify` pinned to its first root.
#
# The trees name each other by URL under OTA_SAMPLE_BASE_URL (default http://127.0.0.1:8080),
# as they are served from OUT_DIR by scripts/demo.sh; generation reads them from disk.
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
  OTA_REPO="${CARGO_TARGET_DIR:-$here/../target}/debug/ota-repo"
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
  chmod 600 "$f"  # git checks them out 0644; ota-repo warns about readable private keys
  echo "$f"
}

# Long lifetimes so the committed sample keeps verifying; real repositories keep the defaults.
# Root outlives the rest: publish refuses a timestamp that would outlive its root.
lifetimes=(--expires root=3653d --expires targets=3650d --expires snapshot=3650d --expires timestamp=3650d)

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
ota supplier delegate "$work" --name brakes-tier2 --key "$(key brakes-tier2)" --sign-here \
  --hardware-id ABS-MOD-1 --expires 3650d >/dev/null
ota supplier add-image "$work" --file "$(image abs-3.0.bin 32768 'abs module 3.0')" \
  --uid abs-fw --version 3.0 --release-counter 3 --hardware-id ABS-MOD-1 --role brakes-tier2 >/dev/null
ota supplier add-image "$work" --file "$(image telematics-0.9.bin 4096 'telematics 0.9 root::0:0:root:/root:/bin/sh')" \
  --uid telematics --version 0.9 --release-counter 1 --hardware-id TCU-1 >/dev/null
ota supplier publish "$work" >/dev/null

base="${OTA_SAMPLE_BASE_URL:-http://127.0.0.1:8080}"
supplier_url="$base/supplier/acme/repository"

# The regulator, with a known-vulnerable list (brake-fw below 1.1.0).
reg="$out/regulator/tuv"
rm -rf "$reg"
mkdir -p "$out/regulator"
ota regulator init "$reg" --name tuv --key "$(key tuv)" "${lifetimes[@]}" >/dev/null
cat > "$reg/rules.json" <<'JSON'
{
  "vulnerable": [
    { "advisory": "SAMPLE-2026-0001", "uid": "brake-fw", "versions": "<1.1.0" }
  ],
  "patterns": []
}
JSON

# The OEM.
oem="$out/oem"
rm -rf "$oem"
# Offline keys (root; targets: supplier pins and regulators) apart from the online one.
ota oem init "$oem" --root-key "$(key oem-root)" --targets-key "$(key oem-targets)" \
  --key "$(key oem-online)" "${lifetimes[@]}" \
  --expires review=3650d --expires vehicles=3650d >/dev/null
ota oem supplier add "$oem" --name acme --root "$work/repository/1.root.json" --url "$supplier_url" \
  --hardware-id 'BRAKE-*' --hardware-id 'HU-*' --hardware-id 'ABS-*' --hardware-id 'TCU-*' >/dev/null
ota oem regulator add "$oem" --name tuv --root "$reg/repository/1.root.json" \
  --url "$base/regulator/tuv/repository" >/dev/null
# Vehicles refuse a regulator whose timestamp runs longer than the OEM allows (12 h for a new
# OEM: the freeze window). The sample's regulator timestamp runs ten years, so the sample's
# OEM allows that; real OEMs keep the default, and regulators publish from cron.
ota oem regulator max-age "$oem" --max-age 3650d >/dev/null
for img in brake-fw:1.0.0 brake-fw:1.1.0 infotainment:5.2 abs-fw:3.0 telematics:0.9; do
  ota oem review submit "$oem" --supplier acme --uid "${img%%:*}" --version "${img#*:}" \
    --from "$work/repository" >/dev/null
done
ota oem publish "$oem" >/dev/null

ota regulator review "$reg" --master "$oem/repository" --master-root "$oem/repository/1.root.json" \
  --supplier-from "acme=$work/repository"
ota regulator publish "$reg" >/dev/null

# Each vehicle's secret (what its gateway is provisioned with: the served tree names no VIN).
rm -rf "$out/vehicles" && mkdir -p "$out/vehicles"
secret() { echo "$out/vehicles/$1.TEST-ONLY.secret"; }
ota oem vehicle add "$oem" --vin WDD2130421A000001 --ecu BRK-0001:BRAKE-A --ecu HU-0001:HU-GEN3 \
  --ecu ABS-0001:ABS-MOD-1 --secret "$(secret WDD2130421A000001)" >/dev/null
ota oem vehicle add "$oem" --vin WDD2130421A000002 --ecu BRK-0002:BRAKE-B --ecu HU-0002:HU-GEN3 \
  --aftermarket DASHCAM-7:CAM-1 --secret "$(secret WDD2130421A000002)" >/dev/null
ota oem vehicle add "$oem" --vin WDD2130421A000003 --ecu BRK-0003:BRAKE-A \
  --secret "$(secret WDD2130421A000003)" >/dev/null
# Offline: nothing is served yet, so `oem assign` cannot ask the regulator what vehicles will
# (the releases assigned are the approved ones); --force assigns without the answer.
assign() { ota oem assign "$oem" "$@" --force >/dev/null; }
assign --hardware-id BRAKE-A --supplier acme --uid brake-fw --version 1.1.0
assign --vin WDD2130421A000002 --ecu BRK-0002 --supplier acme --uid brake-fw --version 1.1.0
assign --hardware-id HU-GEN3 --supplier acme --uid infotainment --version 5.2
assign --vin WDD2130421A000001 --ecu ABS-0001 --supplier acme --uid abs-fw --version 3.0
ota oem publish "$oem" >/dev/null
rm -rf "$oem/cache" "$oem/director-cache" "$oem"/reports.* "$reg/cache" "$work/.ota-repo.lock" "$oem/.ota-repo.lock" "$reg/.ota-repo.lock"

# Settings hold absolute key paths; store them relative to the sample for a portable checkout.
sed -i "s#\"$out/#\"../../#g" "$work/ota-repo.json" "$reg/ota-repo.json"
sed -i "s#\"$out/#\"../#g" "$oem/ota-repo.json"

for tree in "$work" "$oem" "$reg"; do
  ota verify "$tree/repository" --root "$tree/repository/1.root.json"
done
