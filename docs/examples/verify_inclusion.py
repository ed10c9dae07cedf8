#!/usr/bin/env python3
"""Check an Axis evidence bundle's inclusion proofs with the standard library and xmlsec1.

    python3 verify_inclusion.py BUNDLE.zip HUB.pem

HUB.pem is the hub certificate you trust, obtained out of band (not the one in the
bundle). The script checks the tree head's XMLDSig signature with xmlsec1 pinned to
HUB.pem, reads the head's size and root, then recomputes, for every entry of the
bundle, its leaf hash and the root its audit path leads to (RFC 9162 §2.1.3.2).
It prints one line per entry and exits 1 if anything does not verify. It is an
independent check of docs/evidence.md; `axis audit verify` does this and more.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile

LOG = "{urn:axis:log:1}"

# leaf_hash, node_hash and root_from_path deliberately repeat axis/evidence/merkle.py:
# this script must run without Axis installed, as an independent check an auditor can
# read in full or port to another tool. tests/test_hub_evidence.py runs it on a real bundle.


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(index: int, size: int, leaf: bytes, path: list) -> bytes | None:
    """The root an audit path leads to (RFC 9162 §2.1.3.2), or None if it cannot."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def head_signature_ok(head: bytes, hub_pem: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "head.xml")
        with open(path, "wb") as f:
            f.write(head)
        done = subprocess.run(
            ["xmlsec1", "--verify", "--pubkey-cert-pem", hub_pem,
             "--enabled-key-data", "key-name", path],
            capture_output=True, check=False)
    return done.returncode == 0


def main(bundle: str, hub_pem: str) -> int:
    archive = zipfile.ZipFile(bundle)
    manifest = json.loads(archive.read("manifest.json"))
    head = archive.read(manifest["head"])
    if not head_signature_ok(head, hub_pem):
        print("FAIL: the tree head's signature is not the hub's")
        return 1
    root = ET.fromstring(head)
    size = int(root.findtext(LOG + "TreeSize"))
    root_hash = bytes.fromhex(root.findtext(LOG + "RootHash"))
    print(f"tree head: {size} entries, root {root_hash.hex()} (signature OK)")
    failures = 0
    for entry in manifest["entries"]:
        payload = archive.read(entry["file"])
        leaf = leaf_hash(entry["type"].encode() + b"\n" + payload)
        path = [bytes.fromhex(h) for h in entry["path"]]
        ok = root_from_path(entry["index"], size, leaf, path) == root_hash
        failures += not ok
        print(f"{'OK  ' if ok else 'FAIL'} entry {entry['index']:>6} {entry['file']}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
