#!/usr/bin/env python3
"""python-tuf as an independent reader of a tree published by `ota-repo`.

    read_tree.py TREE_DIR TRUSTED_ROOT [--url BASE_URL]
    read_tree.py --check

TREE_DIR is a published `repository/` directory and TRUSTED_ROOT the root the reader starts
from (normally TREE_DIR/1.root.json). The tree is fetched over HTTP: from BASE_URL when given
(metadata at BASE_URL/, targets at BASE_URL/targets/), otherwise from a Python HTTP server this
script starts on 127.0.0.1 for TREE_DIR. Nothing is read from TREE_DIR directly.

python-tuf's ngclient `Updater` then does the whole client workflow: refresh() (root chain,
timestamp, snapshot, top-level targets), a walk of every delegation (each delegated role is
loaded and verified against the role that delegates to it), and for every target listed in
any role: `get_targetinfo()` (the normal lookup through the delegation tree, which must find
it) and `download_target()` (length and hashes checked by python-tuf). Files the snapshot
lists that are not targets roles (the OEM's `review.json`, `vehicles.json`) are fetched as
`N.NAME` and checked against python-tuf's verified snapshot entry.

The lookups and downloads use the public API. Enumerating roles and reporting versions uses
three internals of `Updater` (`_trusted_set`, `_load_targets`, the one `get_targetinfo` calls to
load and verify a delegated role, and `_fetcher`), present since ngclient's first release.

On success it prints one JSON object on stdout and exits 0:

    {"python_tuf": "7.0.1",
     "root": {"version": 1, "extension_fields": [...]},
     "timestamp": {"version": 3}, "snapshot": {"version": 3, "meta": ["targets.json", ...]},
     "targets": {"version": 2, "extension_fields": ["regulators", "suppliers"]},
     "delegated": {"ROLE": {"version": 1, "delegator": "targets"}, ...},
     "downloaded": [{"name": N, "role": R, "length": L, "sha256": H}, ...],
     "snapshot_files": {"review.json": {"version": V, "type": T, "length": L, "sha256": H}}}

(`extension_fields` are the fields python-tuf keeps as unrecognized.) On any refusal it
prints {"error": "<python-tuf exception>: <message>", "stage": ...} and exits 1.
`--check` exits 0 when python-tuf and its RSA backend (pyca/cryptography) are importable,
and 3 otherwise.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import inspect
import json
import os
import sys
import tempfile
import threading


def check(quiet: bool = False) -> int:
    try:
        import cryptography  # noqa: F401  securesystemslib verifies RSA-PSS with it
        import tuf
        import tuf.ngclient  # noqa: F401
    except ImportError as e:
        print(f"python-tuf is not importable: {e}", file=sys.stderr)
        return 3
    if not quiet:
        print(f"python-tuf {tuf.__version__}")
    return 0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002
        pass


def _serve(directory: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def _updater(metadata_dir, base_url, target_dir, root_bytes):
    from tuf.ngclient import Updater

    # The trusted root is also the cached root.json, for python-tuf releases before
    # `bootstrap` (5.0) and those where it is optional.
    with open(os.path.join(metadata_dir, "root.json"), "wb") as f:
        f.write(root_bytes)
    kwargs = {}
    if "bootstrap" in inspect.signature(Updater.__init__).parameters:
        kwargs["bootstrap"] = root_bytes
    return Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=base_url,
        target_dir=target_dir,
        target_base_url=base_url + "targets/",
        **kwargs,
    )


def _child_roles(targets) -> list[str]:
    d = targets.delegations
    if d is None:
        return []
    if d.roles is not None:
        return list(d.roles)
    if d.succinct_roles is not None:
        return list(d.succinct_roles.get_roles())
    return []


def read(root_file: str, base_url: str) -> dict:
    """Read the tree served at `base_url` with python-tuf, trusting `root_file`."""
    import tuf

    with open(root_file, "rb") as f:
        root_bytes = f.read()
    if not base_url.endswith("/"):
        base_url += "/"
    summary: dict = {"python_tuf": tuf.__version__}
    with tempfile.TemporaryDirectory(prefix="python-tuf-") as tmp:
        metadata_dir = os.path.join(tmp, "metadata")
        target_dir = os.path.join(tmp, "targets")
        os.makedirs(metadata_dir)
        os.makedirs(target_dir)

        stage = "load the trusted root"
        try:
            updater = _updater(metadata_dir, base_url, target_dir, root_bytes)
            stage = "refresh (root, timestamp, snapshot, targets)"
            updater.refresh()
            trusted = updater._trusted_set  # versions of what python-tuf verified
            summary["root"] = {
                "version": trusted.root.version,
                "extension_fields": sorted(trusted.root.unrecognized_fields),
            }
            summary["timestamp"] = {"version": trusted.timestamp.version}
            summary["snapshot"] = {
                "version": trusted.snapshot.version,
                "meta": sorted(trusted.snapshot.meta),
            }
            summary["targets"] = {
                "version": trusted.targets.version,
                "extension_fields": sorted(trusted.targets.unrecognized_fields),
            }

            # Every role, in python-tuf's own preorder depth-first order, each verified
            # against its delegator by python-tuf (the same call get_targetinfo uses).
            stage = "walk the delegations"
            delegated: dict = {}
            listed: dict = {}  # target name -> first role listing it
            stack = [("targets", "root")]
            seen: set = set()
            while stack:
                role, parent = stack.pop()
                if role in seen:
                    continue
                seen.add(role)
                stage = f"load delegated role {role} (delegated by {parent})"
                md = updater._load_targets(role, parent)
                if role != "targets":
                    delegated[role] = {"version": md.version, "delegator": parent}
                for name in md.targets:
                    listed.setdefault(name, role)
                stack.extend((c, role) for c in reversed(_child_roles(md)))
            summary["delegated"] = delegated

            downloaded = []
            for name, role in listed.items():
                stage = f"get_targetinfo({name})"
                info = updater.get_targetinfo(name)
                if info is None:
                    raise LookupError(
                        f"{name} is listed by role {role} but the lookup through the "
                        "delegation tree does not find it"
                    )
                stage = f"download_target({name})"
                path = updater.download_target(info)
                with open(path, "rb") as f:
                    data = f.read()
                downloaded.append(
                    {
                        "name": name,
                        "role": role,
                        "length": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                )
            summary["downloaded"] = downloaded

            # Files the snapshot lists that are not targets roles python-tuf loaded (the
            # OEM's review.json and vehicles.json): python-tuf's client never fetches them,
            # so fetch N.NAME here and check it against the snapshot entry python-tuf
            # verified (MetaFile.verify_length_and_hashes).
            others = {}
            for meta_name, meta in sorted(trusted.snapshot.meta.items()):
                role = meta_name[: -len(".json")]
                if role == "targets" or role in delegated:
                    continue
                stage = f"check {meta_name} against the snapshot"
                prefix = f"{meta.version}." if trusted.root.consistent_snapshot else ""
                data = updater._fetcher.download_bytes(
                    base_url + prefix + meta_name, meta.length or 16_000_000
                )
                meta.verify_length_and_hashes(data)
                others[meta_name] = {
                    "version": meta.version,
                    "type": json.loads(data)["signed"]["_type"],
                    "length": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            summary["snapshot_files"] = others
        except Exception as e:  # noqa: BLE001  any refusal is the result
            return {"error": f"{type(e).__name__}: {e}", "stage": stage}
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tree", nargs="?", help="the published repository/ directory")
    p.add_argument("root", nargs="?", help="the trusted root, e.g. TREE/1.root.json")
    p.add_argument("--url", help="where TREE is served (default: serve it here)")
    p.add_argument("--check", action="store_true", help="only check python-tuf imports")
    a = p.parse_args()
    if a.check:
        return check()
    if a.tree is None or a.root is None:
        p.error("TREE and ROOT are required")
    if check(quiet=True) != 0:
        return 3
    server = None
    url = a.url
    if url is None:
        server, url = _serve(a.tree)
    try:
        result = read(a.root, url)
    finally:
        if server is not None:
            server.shutdown()
    json.dump(result, sys.stdout, indent=1, sort_keys=True)
    print()
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
