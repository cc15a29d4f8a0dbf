#!/usr/bin/env python3
"""python-tuf as the peer of the gateway benchmark's client-speed section (benches/gateway.rs).

    python_tuf_peer.py --check
    python_tuf_peer.py make REPO_DIR COUNT SIZE
    python_tuf_peer.py client METADATA_DIR TARGET_DIR TRUSTED_ROOT BASE_URL [--refresh-only]
    python_tuf_peer.py measure -- PROGRAM ARGS...

`make` builds, with python-tuf's metadata API, a consistent-snapshot repository in REPO_DIR:
one RSA-3072 key (rsassa-pss-sha256, securesystemslib's CryptoSigner) per top-level role,
`1.root.json`, `1.targets.json`, `1.snapshot.json`, `timestamp.json`, and COUNT targets
`t000.bin`... of SIZE bytes each, stored as `targets/SHA256.NAME`. It prints the target names,
one per line.

`client` is python-tuf's ngclient doing what a client does: refresh(), then for every target
of the top-level targets role get_targetinfo() and download_target() (or only refresh() with
--refresh-only). BASE_URL serves the metadata, BASE_URL/targets/ the targets.

`measure` runs PROGRAM and prints `wall_s cpu_s maxrss_kib` of that one child (wall from
perf_counter around fork and wait; CPU user + system and peak RSS from wait4's rusage, in
microseconds, not clock ticks). It exits with the child's status. The benchmark measures both
clients through it, so they are timed the same way.

`--check` exits 0 when python-tuf and pyca/cryptography are importable, 3 otherwise.
python-tuf is a peer of the benchmark, never a dependency of the project.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time


def check() -> int:
    try:
        import cryptography  # noqa: F401
        import tuf
        import tuf.ngclient  # noqa: F401
        from securesystemslib.signer import CryptoSigner  # noqa: F401
    except ImportError as e:
        print(f"python-tuf is not importable: {e}", file=sys.stderr)
        return 3
    print(f"python-tuf {tuf.__version__}")
    return 0


def make(repo: str, count: int, size: int) -> int:
    from datetime import datetime, timedelta, timezone

    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import (
        Metadata,
        MetaFile,
        Root,
        Snapshot,
        TargetFile,
        Targets,
        Timestamp,
    )
    from tuf.api.serialization.json import JSONSerializer

    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {r: CryptoSigner.generate_rsa(size=3072) for r in ("root", "timestamp", "snapshot", "targets")}
    os.makedirs(os.path.join(repo, "targets"), exist_ok=True)
    ser = JSONSerializer(compact=False)

    targets = Targets(version=1, expires=expires)
    names = []
    for i in range(count):
        name = f"t{i:03}.bin"
        # Distinct contents per target, cheap to make.
        block = hashlib.sha256(name.encode()).digest() * 32
        data = (block * (size // len(block) + 1))[:size]
        tf = TargetFile.from_data(name, data, ["sha256"])
        targets.targets[name] = tf
        with open(os.path.join(repo, "targets", f"{tf.hashes['sha256']}.{name}"), "wb") as f:
            f.write(data)
        names.append(name)

    root = Root(expires=expires, consistent_snapshot=True)
    for role, s in signers.items():
        root.add_key(s.public_key, role)

    def write(md: Metadata, file: str) -> bytes:
        md.sign(signers[md.signed.type])
        raw = md.to_bytes(ser)
        with open(os.path.join(repo, file), "wb") as f:
            f.write(raw)
        return raw

    write(Metadata(root), "1.root.json")
    raw_targets = write(Metadata(targets), "1.targets.json")
    snapshot = Snapshot(version=1, expires=expires)
    snapshot.meta["targets.json"] = MetaFile(version=1, length=len(raw_targets))
    raw_snapshot = write(Metadata(snapshot), "1.snapshot.json")
    timestamp = Timestamp(version=1, expires=expires)
    timestamp.snapshot_meta = MetaFile(version=1, length=len(raw_snapshot))
    write(Metadata(timestamp), "timestamp.json")
    print("\n".join(names))
    return 0


def client(metadata_dir: str, target_dir: str, root_file: str, base_url: str, refresh_only: bool) -> int:
    from tuf.ngclient import Updater

    if not base_url.endswith("/"):
        base_url += "/"
    with open(root_file, "rb") as f:
        root = f.read()
    os.makedirs(metadata_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=base_url,
        target_dir=target_dir,
        target_base_url=base_url + "targets/",
        bootstrap=root,
    )
    updater.refresh()
    if refresh_only:
        return 0
    names = list(updater._trusted_set.targets.targets)
    for name in names:
        info = updater.get_targetinfo(name)
        if info is None:
            print(f"{name}: not found", file=sys.stderr)
            return 1
        updater.download_target(info)
    return 0


def measure(cmd: list[str]) -> int:
    # posix_spawn (vfork-style in glibc), not fork: a forked copy of this Python process
    # would count its own resident memory as the child's peak.
    devnull = os.open(os.devnull, os.O_WRONLY)
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ), file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    print(f"{wall:.6f} {ru.ru_utime + ru.ru_stime:.6f} {ru.ru_maxrss}")
    return os.waitstatus_to_exitcode(status)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        return check()
    if argv[:1] == ["make"] and len(argv) == 4:
        return make(argv[1], int(argv[2]), int(argv[3]))
    if argv[:1] == ["client"] and len(argv) in (5, 6):
        return client(argv[1], argv[2], argv[3], argv[4], argv[5:] == ["--refresh-only"])
    if argv[:2] == ["measure", "--"] and len(argv) > 2:
        return measure(argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
