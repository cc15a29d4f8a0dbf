#!/usr/bin/env bash
# The end-to-end demo on embedded defaults: scripts/demo.sh [WORK_DIR]
#
# Today it runs the stages that exist: it builds ota-repo, generates the sample supplier
# repository (keys, images, a tier-2 delegation), publishes it as a static tree, and verifies
# the whole tree as a vehicle would, from its pinned first root. The OEM and regulator
# repositories, the gateway's update over HTTPS and the CAN forwarding to simulated ECUs join
# this script as they land (see the issues).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-$(mktemp -d -t ota-demo.XXXXXX)}"
cargo build -q --release --manifest-path "$here/Cargo.toml" -p ota-repo
export OTA_REPO="$here/target/release/ota-repo"
echo "== generating the sample trees in $work"
"$here/sample-repo/generate.sh" "$work"
echo "== the supplier's static tree (serve it with any web server):"
find "$work/supplier/acme/repository" -maxdepth 1 -type f -printf '   %f\n' | sort
echo "== demo finished: trees are in $work"
