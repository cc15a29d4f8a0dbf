#!/usr/bin/env bash
# Fetch a small corpus of real old/new binary pairs for the delta-update
# benchmark (scripts/delta-references.py gives the reference sizes).
#
# Usage: scripts/delta-corpus.sh [CACHE_DIR]     (default: target/delta-corpus
#        under the repository root)
#
# Each pair is one ELF file taken from a Debian bookworm (amd64) .deb at two
# consecutive stable/security revisions, i.e. the kind of small security fix
# an OTA update typically ships. The .debs are pinned by SHA-256; a download
# is skipped when the cached .deb already has the right hash. For every pair
# the script writes CACHE_DIR/<name>-old and CACHE_DIR/<name>-new and prints
# one line "<old-path> <new-path>" on stdout (progress goes to stderr).
#
# Sources: deb.debian.org pool (primary). Files leave the pool once superseded
# in every suite, so snapshot.debian.org/file/<sha1> is tried as a permanent
# fallback (it was not resolvable from the machine this was written on).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${1:-$repo_root/target/delta-corpus}"
mkdir -p "$cache/debs"
cache="$(cd "$cache" && pwd)"

for tool in curl sha256sum dpkg-deb tar; do
    command -v "$tool" >/dev/null || { echo "delta-corpus: missing tool: $tool" >&2; exit 1; }
done

DEB=http://deb.debian.org/debian/pool/main
SEC=http://deb.debian.org/debian-security/pool/updates/main

# name | role | url | sha256 | sha1 (snapshot fallback) | path inside the .deb
PAIRS=(
# git 1:2.39.5-0+deb12u2 -> u3: 4 CVE fixes backported; 3.5 MiB executable,
# same size, the "large binary, small source change" case.
"git|old|$SEC/g/git/git_2.39.5-0%2bdeb12u2_amd64.deb|5446b1f6c6f9f058e7b22413b650a45b527c979eb2276d33f46570265ee5eb35|3e3c0521b639de7b3c119284a241eb0dda0edefc|./usr/bin/git"
"git|new|$DEB/g/git/git_2.39.5-0%2bdeb12u3_amd64.deb|637a85ddd6247fab13bdd0592f2f39aff04ce4dbf0655d3ab553ac359a38ce6f|2c939052f7ad1cd1bb8671f79fea6e287f1e4310|./usr/bin/git"
# libxml2 2.9.14+dfsg-1.3~deb12u4 -> u6: shared library (1.7 MiB), security
# patches, identical size.
"libxml2|old|$SEC/libx/libxml2/libxml2_2.9.14%2bdfsg-1.3%7edeb12u4_amd64.deb|f3bac32a5f7d32990af06713eef57664a66e98c13750fa8e007c9cbaf49b98c7|73d9b287566e6cde666e7edbea1771e0d01246ac|./usr/lib/x86_64-linux-gnu/libxml2.so.2.9.14"
"libxml2|new|$DEB/libx/libxml2/libxml2_2.9.14%2bdfsg-1.3%7edeb12u6_amd64.deb|4460e39dda10a815881374217cde08474747cfa018358cd8612c14b390eff53b|6a16bb0c777264fdbaef83273f581dc658af18ba|./usr/lib/x86_64-linux-gnu/libxml2.so.2.9.14"
# openssh-client 1:9.2p1-2+deb12u9 -> u10: ~1.1 MiB executable that grows by
# 4 KiB, so code shifts (relocated addresses) are exercised.
"ssh|old|$SEC/o/openssh/openssh-client_9.2p1-2%2bdeb12u9_amd64.deb|3159b10a9416169926edcdf4daddf16ac71fb56bc4a952d2a73754cc6741c053|307f3b08c4cee380e36d6d925422628af34f3023|./usr/bin/ssh"
"ssh|new|$DEB/o/openssh/openssh-client_9.2p1-2%2bdeb12u10_amd64.deb|42c250b8b9110382488c53c066a960bc564ddac2cb9e449f47b6cdbb5fc1cb60|a4d2824bdadcc7485a54f6288575acbda8842087|./usr/bin/ssh"
# libssl3 3.0.20-1~deb12u2 -> 3.0.22-1~deb12u2: 4.5 MiB libcrypto across two
# upstream patch releases; the large, harder case.
"libcrypto|old|$DEB/o/openssl/libssl3_3.0.20-1%7edeb12u2_amd64.deb|89be24b41bff568ee6e7caf5680a3d808e80315ed92e407056ce0fa7a5bda025|284281e265adcb7aad5f0d465ab391f7336da132|./usr/lib/x86_64-linux-gnu/libcrypto.so.3"
"libcrypto|new|$SEC/o/openssl/libssl3_3.0.22-1%7edeb12u2_amd64.deb|cb4784740daa9b3b0eaea2b444bbefa686794afbbf3d678d238c1fd9875f2efd|9646c07cf15db75bb019e7aa9bdfda2961f9addf|./usr/lib/x86_64-linux-gnu/libcrypto.so.3"
)

has_sha() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

# fetch URL SHA256 SHA1 DEST: download unless DEST already matches SHA256.
fetch() {
    local url=$1 sha=$2 sha1=$3 dest=$4 src
    has_sha "$dest" "$sha" && return 0
    for src in "$url" "https://snapshot.debian.org/file/$sha1"; do
        echo "delta-corpus: downloading $src" >&2
        if curl -fsSL --retry 2 --connect-timeout 20 -o "$dest.part" "$src"; then
            if has_sha "$dest.part" "$sha"; then
                mv "$dest.part" "$dest"
                return 0
            fi
            echo "delta-corpus: SHA-256 mismatch for $src" >&2
        fi
    done
    rm -f "$dest.part"
    echo "delta-corpus: FAILED to fetch $(basename "$url") (sha256 $sha)" >&2
    return 1
}

declare -A seen=()
names=()
for entry in "${PAIRS[@]}"; do
    IFS='|' read -r name role url sha sha1 member <<<"$entry"
    deb="$cache/debs/$(basename "$url")"
    fetch "$url" "$sha" "$sha1" "$deb"
    out="$cache/$name-$role"
    if ! dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "$member" >"$out.part"; then
        rm -f "$out.part"
        echo "delta-corpus: FAILED to extract $member from $deb" >&2
        exit 1
    fi
    mv "$out.part" "$out"
    if [[ -z "${seen[$name]:-}" ]]; then seen[$name]=1; names+=("$name"); fi
done

for name in "${names[@]}"; do
    echo "$cache/$name-old $cache/$name-new"
done
