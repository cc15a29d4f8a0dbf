#!/usr/bin/env bash
# The end-to-end demo on embedded defaults: scripts/demo.sh [WORK_DIR]
#
#  1. builds ota-repo, ota-gateway and ota-ecu-sim (release);
#  2. generates the three repositories (supplier "acme" with a tier-2 delegation, the OEM,
#     regulator "tuv" reviewing and scanning every image) with TEST-ONLY keys;
#  3. serves them on 127.0.0.1 (nginx if installed, else Python's http.server);
#  4. starts three simulated ECUs (brake, head unit, ABS) on the UDP-carried CAN bus;
#  5. runs the gateway: check, update (every verification step printed by gateway and ECUs),
#     status, and a second update that finds everything up to date;
#  6. the all-or-nothing update: new releases for all three ECUs while the head unit's flash
#     has failed: it refuses, the other two discard what they hold pending, none switches;
#     repaired, the same update goes through on all three;
#  7. a point release by delta: the head unit takes infotainment 5.4 as a delta from the 5.3 it
#     runs (the output says how many bytes it saved);
#  8. a supplier key rotation reaching an ECU: the brake ECU holds an OEM trust document (not a
#     supplier key); acme rotates its targets key, the OEM issues the next trust document from
#     acme's pinned root, and the gateway forwards it before the brake ECU takes a release
#     signed by the new key alone;
#  9. (when qemu-system-arm is installed; otherwise it says how to install it) a vehicle whose
#     brake ECU is firmware on an emulated Cortex-M4 (QEMU mps2-an386, CAN as SLCAN on its
#     UART): the gateway installs an application that confirms itself after its start-up
#     checks, then a signed, approved one that faults at start-up, which the ECU's bootloader
#     reverts by itself.
#
# Binaries are built into $CARGO_TARGET_DIR (default: target/ in the checkout).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d -t ota-demo.XXXXXX)}"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
port="${OTA_DEMO_PORT:-8765}"
base="http://127.0.0.1:$port"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step "building (release)"
cargo build -q --release --manifest-path "$here/Cargo.toml" -p ota-repo -p ota-client
cargo build -q --release --manifest-path "$here/Cargo.toml" -p ota-ecu --features std --bin ota-ecu-sim
bin="${CARGO_TARGET_DIR:-$here/target}/release"
export OTA_REPO="$bin/ota-repo"

step "generating the supplier, OEM and regulator repositories in $work"
OTA_SAMPLE_BASE_URL="$base" "$here/sample-repo/generate.sh" "$work"

# The web server serves what `ota-repo upload` sent, as a publisher's CI sends its tree to a
# CDN: written-once files first, timestamp.json last, old metadata pruned. Every gateway run
# below is preceded by an upload of the three trees.
www="$work/www"
sync_trees() {
  for t in supplier/acme oem regulator/tuv; do
    "$OTA_REPO" upload "$work/$t" --to "$www/$t/repository" --prune >/dev/null
  done
}
step "uploading the three trees to $www (ota-repo upload)"
for t in supplier/acme oem regulator/tuv; do
  "$OTA_REPO" upload "$work/$t" --to "$www/$t/repository"
done

step "serving $www on $base"
nginx_bin="$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)"
if [[ -n "$nginx_bin" ]]; then
  mkdir -p "$work/nginx/logs" "$work/nginx/temp"
  user=""; [[ "$(id -u)" == 0 ]] && user="user root;"
  cat > "$work/nginx/nginx.conf" <<CONF
$user
master_process off;
error_log "$work/nginx/logs/error.log";
pid "$work/nginx/nginx.pid";
events { worker_connections 64; }
http {
  access_log "$work/nginx/logs/access.log";
  client_body_temp_path "$work/nginx/temp/body";
  proxy_temp_path "$work/nginx/temp/proxy";
  fastcgi_temp_path "$work/nginx/temp/fastcgi";
  uwsgi_temp_path "$work/nginx/temp/uwsgi";
  scgi_temp_path "$work/nginx/temp/scgi";
  include "$here/deploy/nginx/ota-http.conf";
  server {
    listen 127.0.0.1:$port;
    root "$www";
    add_header Cache-Control \$ota_cache_control always;
  }
}
CONF
  "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" -g 'daemon off;' &
  pids+=($!)
  echo "nginx $("$nginx_bin" -v 2>&1 | sed 's/.*\///')"
else
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$www" >/dev/null 2>&1 &
  pids+=($!)
  echo "python3 http.server (install nginx for range requests and a real web server)"
fi
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

step "starting three ECUs on the UDP-carried CAN bus"
pub() { "$OTA_REPO" key show "$1" | sed -n '/BEGIN PUBLIC KEY/,/END PUBLIC KEY/p' > "$2"; }
mkdir -p "$work/vehicle"
pub "$work/keys/acme-targets.TEST-ONLY.pem" "$work/vehicle/acme-targets.pub.pem"
pub "$work/keys/brakes-tier2.TEST-ONLY.pem" "$work/vehicle/brakes-tier2.pub.pem"
gw_port=$((port + 1))
report_port=$((port + 7))
vin=WDD2130421A000001
"$OTA_REPO" key generate --bits 2048 --out "$work/vehicle/vehicle.TEST-ONLY.pem" >/dev/null
"$OTA_REPO" oem vehicle key "$work/oem" --vin "$vin" --key "$work/vehicle/vehicle.TEST-ONLY.pem" >/dev/null
# Its decryption keys for encrypted images (installed in the gateway at the factory).
"$OTA_REPO" oem vehicle decryption-keys "$work/oem" --vin "$vin" --out "$work/vehicle/decryption-keys.TEST-ONLY.json"
# Its secret: where its entry is in the OEM's vehicle tree, which names no vehicle.
"$OTA_REPO" oem vehicle secret "$work/oem" --vin "$vin" --out "$work/vehicle/vehicle.TEST-ONLY.secret"
# The brake ECU's trust anchor is an OEM trust document (the targets keys of acme's pinned root),
# which the OEM can rotate in the field; the others hold a supplier key, as the paper's ECUs.
# Two offline signer keys (the default threshold for a new document): one stolen key alone
# cannot change what the ECUs trust.
for k in a b; do
  "$OTA_REPO" key generate --bits 2048 --out "$work/keys/ecu-trust-$k.TEST-ONLY.pem" >/dev/null
done
trust_signers=(--signer-key "$work/keys/ecu-trust-a.TEST-ONLY.pem" --signer-key "$work/keys/ecu-trust-b.TEST-ONLY.pem")
"$OTA_REPO" oem ecu-trust "$work/oem" --hardware-id BRAKE-A --supplier acme "${trust_signers[@]}"
cp "$work/oem/ecu-trust/BRAKE-A.1.bin" "$work/vehicle/brake-trust.bin"
declare -A ecu_pid
sim() { # SERIAL HARDWARE_ID UDP_PORT CAN_ID ANCHOR [SIMULATOR FLAGS…]: start an ECU
  local anchor=--supplier-key; [[ "$5" == *.bin ]] && anchor=--trust
  "$bin/ota-ecu-sim" --bind "127.0.0.1:$3" --peer "127.0.0.1:$gw_port" --serial "$1" --hardware-id "$2" \
    "$anchor" "$5" --flash-dir "$work/vehicle/flash-$1" --rx-id "$4" --tx-id "$(printf '0x%X' $(($4 + 8)))" --fd \
    --ecu-key "$work/vehicle/ecu-$1.TEST-ONLY.pem" "${@:6}" > >(sed -u "s/^/    /") &
  pids+=($!)
  ecu_pid[$1]=$!
}
ecu() { # SERIAL HARDWARE_ID UDP_PORT CAN_ID ANCHOR (supplier key, or trust document .bin): its own key, registered with the OEM
  local key="$work/vehicle/ecu-$1.TEST-ONLY.pem"
  "$OTA_REPO" key generate --bits 2048 --out "$key" >/dev/null
  "$OTA_REPO" oem ecu key "$work/oem" --vin "$vin" --ecu "$1" --key "$key" >/dev/null
  sim "$@"
}
stop_ecu() { kill "${ecu_pid[$1]}" 2>/dev/null || true; wait "${ecu_pid[$1]}" 2>/dev/null || true; }
ecu BRK-0001 BRAKE-A $((port + 2)) 0x7E0 "$work/vehicle/brake-trust.bin"
ecu HU-0001 HU-GEN3 $((port + 3)) 0x7E1 "$work/vehicle/acme-targets.pub.pem"
ecu ABS-0001 ABS-MOD-1 $((port + 4)) 0x7E2 "$work/vehicle/brakes-tier2.pub.pem"
sleep 0.5

cat > "$work/vehicle/gateway.toml" <<TOML
vin = "$vin"
vehicle_secret = "$work/vehicle/vehicle.TEST-ONLY.secret"
vehicle_key = "$work/vehicle/vehicle.TEST-ONLY.pem"
decryption_keys = "$work/vehicle/decryption-keys.TEST-ONLY.json"
master_url = "$base/oem/repository"
master_root = "$work/oem/repository/1.root.json"
state_dir = "$work/vehicle/gateway-state"
report_url = "http://127.0.0.1:$report_port/reports"

[forward]
kind = "udp"
bind = "127.0.0.1:$gw_port"
peers = ["127.0.0.1:$((port + 2))", "127.0.0.1:$((port + 3))", "127.0.0.1:$((port + 4))"]
fd = true

[[ecus]]
serial = "BRK-0001"
hardware_id = "BRAKE-A"
address = 0x7E0

[[ecus]]
serial = "HU-0001"
hardware_id = "HU-GEN3"
address = 0x7E1

[[ecus]]
serial = "ABS-0001"
hardware_id = "ABS-MOD-1"
address = 0x7E2
TOML
gw() { sync_trees; "$bin/ota-gateway" --config "$work/vehicle/gateway.toml" "$@"; }

step "gateway: install the factory OEM root"
gw init
step "gateway: check (master, vehicle assignments, regulator attestations, supplier manifests; no image downloaded)"
gw check
step "gateway: update (download, verify, forward over CAN; each ECU verifies again)"
gw update
sleep 0.3
step "gateway: status"
gw status
step "gateway: update again (nothing new: one timestamp request)"
gw update
step "the OEM's report server (async, bounded; reports into oem/reports.sqlite), behind the web server in production"
"$OTA_REPO" oem report serve "$work/oem" --listen "127.0.0.1:$report_port" > "$work/report-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/report-server.log" 2>/dev/null && break; sleep 0.1; done
head -1 "$work/report-server.log" | sed 's/^/    /'
step "gateway: signed version report (each ECU signs its own), sent to the OEM's report server"
gw report --send
tail -1 "$work/report-server.log" | sed 's/^/    server: /'
step "OEM: what the report said happened to each ECU (installed, refused, reverted, recalled)"
"$OTA_REPO" oem report events "$work/oem" --vin "$vin"

step "all or nothing: brake-fw 1.2.0, infotainment 5.3 and abs-fw 3.1 released, approved and assigned"
acme="$work/supplier/acme"
release() { # FILE SIZE TEXT UID VERSION COUNTER HARDWARE_ID [ROLE]
  { yes "$3" || true; } | head -c "$2" > "$work/images/$1"  # yes ends on SIGPIPE
  "$OTA_REPO" supplier add-image "$acme" --file "$work/images/$1" --uid "$4" --version "$5" \
    --release-counter "$6" --hardware-id "$7" --role "${8:-targets}" >/dev/null
}
release brake-1.2.0.bin 72000 'brake controller 1.2.0' brake-fw 1.2.0 3 BRAKE-A
# The head unit's image is real machine code (the first 210,000 bytes of the bash running this
# script), so the point release below shows what a delta saves on code, not on text.
head -c 210000 "$BASH" > "$work/images/infotainment-5.3.bin"
"$OTA_REPO" supplier add-image "$acme" --file "$work/images/infotainment-5.3.bin" --uid infotainment \
  --version 5.3 --release-counter 8 --hardware-id HU-GEN3 >/dev/null
release abs-3.1.bin 33000 'abs module 3.1' abs-fw 3.1 4 ABS-MOD-1 brakes-tier2
"$OTA_REPO" supplier publish "$acme" >/dev/null
for img in brake-fw:1.2.0 infotainment:5.3 abs-fw:3.1; do
  "$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid "${img%%:*}" --version "${img#*:}" \
    --from "$acme/repository" >/dev/null
done
"$OTA_REPO" oem publish "$work/oem" >/dev/null
"$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
  --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository"
"$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
sync_trees  # the OEM asks the served regulator tree, as vehicles will, before it assigns
for a in BRK-0001:brake-fw:1.2.0 HU-0001:infotainment:5.3 ABS-0001:abs-fw:3.1; do
  IFS=: read -r serial uid version <<< "$a"
  "$OTA_REPO" oem assign "$work/oem" --vin "$vin" --ecu "$serial" --supplier acme --uid "$uid" \
    --version "$version" >/dev/null
done
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "the head unit's flash fails (its simulator restarted with --flash-fault)"
stop_ecu HU-0001
sim HU-0001 HU-GEN3 $((port + 3)) 0x7E1 "$work/vehicle/acme-targets.pub.pem" --flash-fault
sleep 0.5
step "gateway: update (the head unit refuses its image: the brake ECU discards the one it holds pending; no ECU switches)"
if gw update; then
  echo "demo: the update should have failed: the head unit cannot take its image" >&2
  exit 1
fi
sleep 0.3
step "gateway: status (every ECU still runs the image it ran before)"
gw status
step "the head unit repaired: the same update, on all three ECUs"
stop_ecu HU-0001
sim HU-0001 HU-GEN3 $((port + 3)) 0x7E1 "$work/vehicle/acme-targets.pub.pem"
sleep 0.5
gw update
sleep 0.3
gw status

step "a point release by delta: infotainment 5.4 (a fix: a few bytes changed, a few inserted), published with a delta from 5.3"
hu53="$work/images/infotainment-5.3.bin" hu54="$work/images/infotainment-5.4.bin"
{ head -c 120000 "$hu53"; printf 'infotainment 5.4: the fix'; tail -c +120001 "$hu53"; } > "$hu54"
printf '\x5a\x5a\x5a\x5a' | dd of="$hu54" bs=1 seek=4000 conv=notrunc status=none
"$OTA_REPO" supplier add-image "$acme" --file "$hu54" --uid infotainment --version 5.4 \
  --release-counter 9 --hardware-id HU-GEN3 --delta-from 5.3
"$OTA_REPO" supplier publish "$acme" >/dev/null
"$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid infotainment --version 5.4 \
  --from "$acme/repository" >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
"$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
  --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository" >/dev/null
"$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
sync_trees
"$OTA_REPO" oem assign "$work/oem" --vin "$vin" --ecu HU-0001 --supplier acme --uid infotainment \
  --version 5.4 >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "gateway: update (the head unit runs 5.3: the gateway downloads the delta, the ECU rebuilds 5.4 from its active slot and checks it against the manifest)"
gw update | tee "$work/delta-update.log"
if ! grep -q "HU-0001: updated to infotainment 5.4.*by delta from 5.3" "$work/delta-update.log"; then
  echo "demo: the head unit should have been updated by delta" >&2
  exit 1
fi
sleep 0.3

step "acme rotates its targets key; the OEM confirms the new key with acme and issues trust document version 2 from acme's pinned root"
"$OTA_REPO" key generate --bits 2048 --out "$work/keys/acme-targets-2.TEST-ONLY.pem" >/dev/null
"$OTA_REPO" supplier rotate-key "$acme" --role targets --new-key "$work/keys/acme-targets-2.TEST-ONLY.pem"
sync_trees  # acme uploads its new root: the OEM reads it from acme's pinned URL next
# A key new since version 1 and not in the OEM's pin is refused until the OEM confirms it (a
# stolen acme root key could have put it there).
if refusal=$("$OTA_REPO" oem ecu-trust "$work/oem" --hardware-id BRAKE-A --supplier acme "${trust_signers[@]}" 2>&1); then
  echo "demo: an unconfirmed supplier key entered the ECU trust document" >&2
  exit 1
fi
echo "$refusal" | sed 's/^/    /'  # what the OEM sees: the new key, refused until confirmed
new_targets=$("$OTA_REPO" key show "$work/keys/acme-targets-2.TEST-ONLY.pem" | awk '/^key id:/ {print $3}')
"$OTA_REPO" oem ecu-trust "$work/oem" --hardware-id BRAKE-A --supplier acme \
  --confirm-key "$new_targets" "${trust_signers[@]}"
step "brake-fw 1.3.0, signed by the new key alone, released, approved and assigned"
release brake-1.3.0.bin 72000 'brake controller 1.3.0' brake-fw 1.3.0 5 BRAKE-A
"$OTA_REPO" supplier publish "$acme" >/dev/null
"$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid brake-fw --version 1.3.0 \
  --from "$acme/repository" >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
"$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
  --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository"
"$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
sync_trees  # the OEM asks the served regulator tree, as vehicles will, before it assigns
"$OTA_REPO" oem assign "$work/oem" --vin "$vin" --ecu BRK-0001 --supplier acme --uid brake-fw \
  --version 1.3.0 >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "gateway: update (the brake ECU receives trust document version 2, then verifies 1.3.0 with the new key)"
gw update
sleep 0.3
trust_line="$(gw status | grep -c "BRK-0001.*brake-fw 1.3.0.*trust document version 2" || true)"
if [[ "$trust_line" == 0 ]]; then
  echo "demo: the brake ECU should run brake-fw 1.3.0 after the key rotation" >&2
  exit 1
fi
gw status

step "image confidentiality: a second vehicle (WDD2130421A000003) is issued keys, then revoked (stolen)"
vin3=WDD2130421A000003
mkdir -p "$work/vehicle3"
"$OTA_REPO" oem vehicle decryption-keys "$work/oem" --vin "$vin3" --out "$work/vehicle3/decryption-keys.TEST-ONLY.json"
"$OTA_REPO" oem vehicle secret "$work/oem" --vin "$vin3" --out "$work/vehicle3/vehicle.TEST-ONLY.secret"
"$OTA_REPO" oem vehicle revoke-keys "$work/oem" --vin "$vin3"
"$OTA_REPO" oem regulator decryption-keys "$work/oem" --name tuv --out "$work/regulator/tuv-decryption-keys.TEST-ONLY.json"
step "brake-fw 1.4.0 encrypted by acme; the OEM wraps its key for every receiver but the revoked vehicle"
{ yes 'brake controller 1.4.0 CONFIDENTIAL' || true; } | head -c 72000 > "$work/images/brake-1.4.0.bin"
"$OTA_REPO" supplier add-image "$acme" --file "$work/images/brake-1.4.0.bin" --uid brake-fw --version 1.4.0 \
  --release-counter 6 --hardware-id BRAKE-A --encrypt
"$OTA_REPO" supplier publish "$acme" >/dev/null
"$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid brake-fw --version 1.4.0 \
  --from "$acme/repository" --content-key "$acme/content-keys/brake-fw-1.4.0.json"
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "the regulator decrypts brake-fw 1.4.0 and scans the plaintext"
"$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
  --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository" \
  --decryption-keys "$work/regulator/tuv-decryption-keys.TEST-ONLY.json"
"$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
sync_trees  # the OEM asks the served regulator tree, as vehicles will, before it assigns
for a in "$vin":BRK-0001 "$vin3":BRK-0003; do
  "$OTA_REPO" oem assign "$work/oem" --vin "${a%%:*}" --ecu "${a#*:}" --supplier acme --uid brake-fw \
    --version 1.4.0 >/dev/null
done
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "the published trees hold only ciphertext (no served file contains the image's text)"
sync_trees
if grep -rl 'brake controller 1.4.0' "$www" "$acme/repository" "$work/oem/repository" "$work/regulator/tuv/repository"; then
  echo "demo: plaintext of the encrypted image is published" >&2
  exit 1
fi
echo "    no plaintext in the supplier, OEM or regulator trees, nor in what the web server serves"
step "gateway: update (fetches its wrap shard, decrypts chunk by chunk, verifies the plaintext hash, forwards over CAN)"
gw update
sleep 0.3
if ! gw status | grep -q "BRK-0001.*brake-fw 1.4.0"; then
  echo "demo: the brake ECU should run the encrypted brake-fw 1.4.0" >&2
  exit 1
fi
gw status
step "the revoked vehicle's gateway: it cannot decrypt brake-fw 1.4.0 (refused before downloading it)"
cat > "$work/vehicle3/gateway.toml" <<TOML
vin = "$vin3"
vehicle_secret = "$work/vehicle3/vehicle.TEST-ONLY.secret"
decryption_keys = "$work/vehicle3/decryption-keys.TEST-ONLY.json"
master_url = "$base/oem/repository"
master_root = "$work/oem/repository/1.root.json"
state_dir = "$work/vehicle3/gateway-state"
[forward]
kind = "dir"
path = "$work/vehicle3/ecus"
[[ecus]]
serial = "BRK-0003"
hardware_id = "BRAKE-A"
TOML
"$bin/ota-gateway" --config "$work/vehicle3/gateway.toml" init >/dev/null
if "$bin/ota-gateway" --config "$work/vehicle3/gateway.toml" update > "$work/vehicle3/update.log" 2>&1; then
  echo "demo: the revoked vehicle should not have been able to decrypt brake-fw 1.4.0" >&2
  exit 1
fi
sed 's/^/    /' "$work/vehicle3/update.log"
grep -q "excluded" "$work/vehicle3/update.log"
step "supply chain: bosch (a tier-2) signs brake calibration 1.0 in its own directory with its own key; acme ingests and publishes it"
bosch="$work/bosch"  # bosch's own CI: its key never leaves this directory
mkdir -p "$bosch"
"$OTA_REPO" key generate --bits 2048 --out "$bosch/bosch.TEST-ONLY.pem" >/dev/null
"$OTA_REPO" key public "$bosch/bosch.TEST-ONLY.pem" --out "$work/keys/bosch.pub.pem" >/dev/null
"$OTA_REPO" supplier delegate "$acme" --name brake-cal --public-key "$work/keys/bosch.pub.pem" \
  --hardware-id BRAKE-A --path 'brake-cal-*'
"$OTA_REPO" supplier init-tier "$bosch/tier" --name bosch --role brake-cal \
  --key "$bosch/bosch.TEST-ONLY.pem" --hardware-id BRAKE-A --path 'brake-cal-*' >/dev/null
{ yes 'brake calibration 1.0' || true; } | head -c 16000 > "$work/images/brake-cal-1.0.bin"
"$OTA_REPO" supplier add-image "$bosch/tier" --file "$work/images/brake-cal-1.0.bin" \
  --uid brake-cal --version 1.0 --release-counter 7 --hardware-id BRAKE-A >/dev/null
"$OTA_REPO" supplier handover "$bosch/tier" --out "$work/bosch-to-acme"
"$OTA_REPO" supplier ingest "$acme" --from "$work/bosch-to-acme"
"$OTA_REPO" supplier publish "$acme" >/dev/null
if grep -rlq 'PRIVATE KEY' "$acme" "$work/bosch-to-acme"; then
  echo "demo: a private key reached acme" >&2
  exit 1
fi
# The brake ECU must trust bosch's key for BRAKE-A: the OEM follows acme's delegation and
# confirms the new key (checked with bosch out of band).
sync_trees  # acme uploads: the OEM reads the delegation from acme's pinned URL
bosch_id=$("$OTA_REPO" key show "$work/keys/bosch.pub.pem" | awk '/^key id:/ {print $3}')
"$OTA_REPO" oem ecu-trust "$work/oem" --hardware-id BRAKE-A --supplier acme \
  --confirm-key "$bosch_id" "${trust_signers[@]}"
"$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid brake-cal --version 1.0 \
  --from "$acme/repository" >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
"$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
  --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository" \
  --decryption-keys "$work/regulator/tuv-decryption-keys.TEST-ONLY.json"
"$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
sync_trees  # the OEM asks the served regulator tree, as vehicles will, before it assigns
"$OTA_REPO" oem assign "$work/oem" --vin "$vin" --ecu BRK-0001 --supplier acme --uid brake-cal \
  --version 1.0 >/dev/null
"$OTA_REPO" oem publish "$work/oem" >/dev/null
step "gateway: update (the brake ECU receives trust document version 3 with bosch's key, then verifies bosch's signature)"
gw update
sleep 0.3
if ! gw status | grep -q "BRK-0001.*brake-cal 1.0"; then
  echo "demo: the brake ECU should run bosch's brake-cal 1.0" >&2
  exit 1
fi
gw status
step "gateway: report sent; the OEM's events for the vehicle, one per install or refusal"
gw report --send
"$OTA_REPO" oem report events "$work/oem" --vin "$vin"
if ! "$OTA_REPO" oem report events "$work/oem" --vin "$vin" | grep -q "BRK-0001 installed brake-cal 1.0"; then
  echo "demo: the OEM should have the brake ECU's install of brake-cal 1.0 from the report" >&2
  exit 1
fi

step "an ECU on an emulated Cortex-M4: trial boots of real applications (QEMU mps2-an386)"
qemu_bin="$(command -v qemu-system-arm || true)"
if [[ -z "$qemu_bin" ]] || ! rustup target list --installed 2>/dev/null | grep -qx thumbv7em-none-eabihf; then
  echo "    skipped: needs qemu-system-arm and the thumbv7em-none-eabihf Rust target:"
  echo "      apt-get install qemu-system-arm && rustup target add thumbv7em-none-eabihf"
else
  cargo build -q --release --manifest-path "$here/Cargo.toml" -p ota-ecu --features std \
    --bin ota-ecu-factory --bin ota-ecu-image --bin ota-slcan-bridge
  cargo build -q --manifest-path "$here/Cargo.toml" -p ota-ecu-qemu -p ota-ecu-app \
    --profile firmware --target thumbv7em-none-eabihf
  fw="${CARGO_TARGET_DIR:-$here/target}/thumbv7em-none-eabihf/firmware"
  v5="$work/vehicle5"; vin5=WDD2130421A000005
  mkdir -p "$v5/ecu"
  # The supplier's two builds for the board, as the images it publishes.
  "$bin/ota-ecu-image" "$fw/ecu-app-confirms" "$work/images/brake-app-4.0.bin" | sed 's/^/    /'
  "$bin/ota-ecu-image" "$fw/ecu-app-faults" "$work/images/brake-app-4.1.bin" | sed 's/^/    /'
  "$OTA_REPO" oem vehicle add "$work/oem" --vin "$vin5" --ecu BRK-Q001:BRAKE-Q \
    --secret "$v5/vehicle.TEST-ONLY.secret" >/dev/null
  # The production line: the ECU's flash starts with its factory record (acme's current key)
  # and the OEM's trust document for BRAKE-Q, which names the OEM's instruction key: the ECU
  # installs only what the OEM instructed it to, so a stolen supplier key on the bus is not
  # enough. (Partial verification: tuv's key here is RSA-3072, and checking its approval on the
  # ECU needs more than the emulated ECU's 24 KiB heap; client/tests/qemu_ecu.rs runs full
  # verification with RSA-2048 keys.)
  pub "$work/keys/acme-targets-2.TEST-ONLY.pem" "$v5/acme-targets-2.pub.pem"
  "$OTA_REPO" oem ecu-trust "$work/oem" --hardware-id BRAKE-Q --supplier-key "$v5/acme-targets-2.pub.pem" \
    "${trust_signers[@]}" >/dev/null
  "$bin/ota-ecu-factory" --serial BRK-Q001 --hardware-id BRAKE-Q \
    --supplier-key "$v5/acme-targets-2.pub.pem" --trust "$work/oem/ecu-trust/BRAKE-Q.1.bin" \
    --out "$v5/ecu/ota-ecu-flash.bin" | sed 's/^/    /'
  app_release() { # VERSION COUNTER: released by acme, reviewed, approved, assigned to BRK-Q001
    "$OTA_REPO" supplier add-image "$acme" --file "$work/images/brake-app-$1.bin" --uid brake-fw \
      --version "$1" --release-counter "$2" --hardware-id BRAKE-Q >/dev/null
    "$OTA_REPO" supplier publish "$acme" >/dev/null
    "$OTA_REPO" oem review submit "$work/oem" --supplier acme --uid brake-fw --version "$1" \
      --from "$acme/repository" >/dev/null
    "$OTA_REPO" oem publish "$work/oem" >/dev/null
    "$OTA_REPO" regulator review "$work/regulator/tuv" --master "$work/oem/repository" \
      --master-root "$work/oem/repository/1.root.json" --supplier-from "acme=$acme/repository" \
      --decryption-keys "$work/regulator/tuv-decryption-keys.TEST-ONLY.json" >/dev/null
    "$OTA_REPO" regulator publish "$work/regulator/tuv" >/dev/null
    sync_trees
    "$OTA_REPO" oem assign "$work/oem" --vin "$vin5" --ecu BRK-Q001 --supplier acme --uid brake-fw \
      --version "$1" >/dev/null
    "$OTA_REPO" oem publish "$work/oem" >/dev/null
  }
  app_release 4.0 10
  qemu_port=$((port + 10))
  (cd "$v5/ecu" && exec "$qemu_bin" -M mps2-an386 -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -serial "tcp:127.0.0.1:$qemu_port,server=on,wait=on" -serial file:console.log \
    -kernel "$fw/ota-ecu-qemu") </dev/null >/dev/null 2>&1 &
  pids+=($!)
  "$bin/ota-slcan-bridge" --serial "tcp:127.0.0.1:$qemu_port" --bind "127.0.0.1:$((port + 9))" \
    --peer "127.0.0.1:$((port + 8))" > "$v5/bridge.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "listening on the CAN line" "$v5/ecu/console.log" 2>/dev/null && break; sleep 0.1; done
  cat > "$v5/gateway.toml" <<TOML
vin = "$vin5"
vehicle_secret = "$v5/vehicle.TEST-ONLY.secret"
master_url = "$base/oem/repository"
master_root = "$work/oem/repository/1.root.json"
state_dir = "$v5/gateway-state"
[forward]
kind = "udp"
bind = "127.0.0.1:$((port + 8))"
peers = ["127.0.0.1:$((port + 9))"]
fd = false
[[ecus]]
serial = "BRK-Q001"
hardware_id = "BRAKE-Q"
address = 0x7E0
TOML
  gw5() { sync_trees; "$bin/ota-gateway" --config "$v5/gateway.toml" "$@"; }
  console() { # the emulated ECU's console since line $1
    tail -n "+$1" "$v5/ecu/console.log" | sed 's/^/    console: /'
  }
  wait_console() { # TEXT: up to 30 s
    for _ in $(seq 300); do grep -q "$1" "$v5/ecu/console.log" && return 0; sleep 0.1; done
    echo "demo: the emulated ECU never said: $1" >&2; exit 1
  }
  gw5 init >/dev/null
  step "gateway: update (brake-fw 4.0 over CAN into the emulated ECU; it starts on trial and confirms itself)"
  gw5 update
  wait_console "APP brake-fw 4.0: running"
  console 1
  step "brake-fw 4.1 released, approved and assigned: it faults at start-up"
  app_release 4.1 11
  seen=$(wc -l < "$v5/ecu/console.log")
  step "gateway: update (4.1 installed and activated; the bootloader reverts it by itself)"
  if gw5 update; then
    echo "demo: brake-fw 4.1 faults at start-up: the update should have been reported reverted" >&2
    exit 1
  fi
  wait_console "REVERTED brake-fw 4.1"
  console "$((seen + 1))"
  gw5 status
fi

step "demo finished: trees, logs and ECU flash are in $work"
