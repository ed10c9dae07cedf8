"""Evidence bundles as data and as ZIP files (pure; see docs/evidence.md, "Evidence bundles").

A bundle holds a signed tree head (and its RFC 3161 token), the hub certificate, the log
entries about one document with their inclusion proofs, optionally the package, and the
CAs' CRLs and OCSP responses the hub checked the signers against (when it checked any).
:func:`write_bundle` makes a deterministic ZIP of it (fixed times, sorted names), and
:func:`read_bundle` reads one back, refusing anything that is not a well-formed bundle
with :class:`~axis.evidence.errors.BundleMalformed`. Reading checks form only: whether
the files prove anything is :mod:`axis.evidence.audit`'s business.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from axis.evidence.errors import BundleMalformed, HeadInvalid
from axis.evidence.heads import parse_time
from routing.contract import utc_text

FORMAT = "axis-evidence/1"
MANIFEST = "manifest.json"
HEAD_FILE = "head.xml"
TIMESTAMP_FILE = "head.tsr"
HUB_CERTIFICATE_FILE = "hub.pem"
PACKAGE_FILE = "package.edxml"
ENTRY_TYPES = ("receipt", "registry")
REVOCATION_KINDS = ("crl", "ocsp")
SUBJECT_KEYS = ("document_organ", "document_id", "consignment")

MAX_ENTRIES = 10_000
MAX_MEMBERS = MAX_ENTRIES + 16
MAX_TOTAL_BYTES = 512 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_PATH_LENGTH = 64  # a tree of fewer than 2**64 leaves
MAX_INDEX = 2**63 - 1

_EXTENSIONS = {"receipt": "xml", "registry": "json"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a ZIP can record: no clock in the file
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_REVOCATION = 1_000


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One log entry: its ``type`` (``receipt`` or ``registry``), its ``index`` in the
    log, its ``payload`` byte for byte, and the inclusion proof ``path`` to the head."""

    type: str
    index: int
    payload: bytes
    path: tuple[bytes, ...]

    @property
    def file(self) -> str:
        """Its file name in the archive: ``entries/0007.receipt.xml``."""
        return entry_file(self.type, self.index)

    @property
    def entry(self) -> bytes:
        """The log entry the leaf hashes: ``type "\\n" payload``."""
        return entry_bytes(self.type, self.payload)


@dataclass(frozen=True, slots=True)
class RevocationFile:
    """A CA's CRL or OCSP response (DER, byte for byte) the hub relied on for a signer."""

    kind: str
    der: bytes

    @property
    def file(self) -> str:
        """Its file name in the archive: ``revocation/<SHA-256>.crl`` (or ``.ocsp``)."""
        return f"revocation/{hashlib.sha256(self.der).hexdigest()}.{self.kind}"


@dataclass(frozen=True, slots=True)
class Bundle:
    """An evidence bundle: ``subject`` (``document_organ``, ``document_id``,
    ``consignment``), the signed ``head`` and its ``timestamp`` token (DER, or None), the
    ``hub_certificate`` (PEM), the ``entries`` (by index), the ``package`` if exported
    with it, when it was exported, and the ``revocation`` material (optional: a bundle
    without it is as valid as before)."""

    subject: dict[str, str | None]
    head: bytes
    timestamp: bytes | None
    hub_certificate: bytes
    entries: tuple[BundleEntry, ...]
    package: bytes | None
    exported_at: datetime
    revocation: tuple[RevocationFile, ...] = ()


def entry_bytes(type_: str, payload: bytes) -> bytes:
    """The log entry of ``payload``: ``type "\\n" payload``."""
    return type_.encode("ascii") + b"\n" + payload


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of registry entries: UTF-8, sorted keys, ``,``/``:`` with no
    spaces, non-ASCII characters as themselves."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def entry_file(type_: str, index: int) -> str:
    """The archive name of the entry at ``index``: ``entries/0007.receipt.xml``."""
    return f"entries/{index:04d}.{type_}.{_EXTENSIONS[type_]}"


def manifest_of(bundle: Bundle) -> dict[str, Any]:
    """The ``manifest.json`` object of ``bundle``."""
    return {
        "format": FORMAT,
        "exported_at": utc_text(bundle.exported_at),
        "subject": dict(bundle.subject),
        "head": HEAD_FILE,
        "timestamp": TIMESTAMP_FILE if bundle.timestamp is not None else None,
        "hub_certificate": HUB_CERTIFICATE_FILE,
        "package": PACKAGE_FILE if bundle.package is not None else None,
        "entries": [
            {"file": e.file, "type": e.type, "index": e.index, "path": [h.hex() for h in e.path]}
            for e in sorted(bundle.entries, key=lambda e: e.index)
        ],
        # Only when present: a bundle without it keeps the manifest it always had.
        **({"revocation": [{"file": r.file, "kind": r.kind} for r in _unique(bundle.revocation)]}
           if bundle.revocation else {}),
    }  # fmt: skip


def write_bundle(bundle: Bundle) -> bytes:
    """The bundle as a ZIP file; the same bundle always gives the same bytes."""
    for entry in bundle.entries:
        if entry.type not in ENTRY_TYPES:
            raise ValueError(f"unknown entry type {entry.type!r}")
    for material in bundle.revocation:
        if material.kind not in REVOCATION_KINDS:
            raise ValueError(f"unknown revocation material {material.kind!r}")
    files = {
        MANIFEST: json.dumps(manifest_of(bundle), ensure_ascii=False, indent=2).encode() + b"\n",
        HEAD_FILE: bundle.head,
        HUB_CERTIFICATE_FILE: bundle.hub_certificate,
        **{entry.file: entry.payload for entry in bundle.entries},
        **{material.file: material.der for material in bundle.revocation},
    }
    if bundle.timestamp is not None:
        files[TIMESTAMP_FILE] = bundle.timestamp
    if bundle.package is not None:
        files[PACKAGE_FILE] = bundle.package
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            archive.writestr(info, files[name], compresslevel=9)
    return out.getvalue()


def read_bundle(data: bytes) -> Bundle:
    """Read a bundle ZIP; anything that is not a well-formed bundle raises
    ``audit.bundle_malformed``: not a ZIP, too large, a member path that escapes the
    archive, a duplicate member, no or an unreadable ``manifest.json``, an unknown
    format, a file the manifest names that is missing."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError,
            EOFError) as exc:  # fmt: skip
        raise BundleMalformed(f"the bundle is not a ZIP file ({exc})") from None
    with archive:
        members = _members(archive)
        manifest = _manifest(archive, members)
        try:
            return _bundle(manifest, lambda name: _read(archive, members, name))
        except HeadInvalid as error:  # parse_time's code is not the right one here
            raise BundleMalformed(f"manifest.json: {error.reason}") from None


def _members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise BundleMalformed(f"the bundle has {len(infos)} files, more than {MAX_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        raise BundleMalformed(f"the bundle unpacks to {total} bytes, more than {MAX_TOTAL_BYTES}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_name(info.filename)
        if info.filename in members:
            raise BundleMalformed(f"the bundle holds {info.filename!r} twice")
        members[info.filename] = info
    return members


def _check_name(name: str) -> None:
    parts = PurePosixPath(name).parts
    if (
        not name
        or name.startswith("/")
        or any(c in name for c in "\\:\x00")
        or any(part in ("..", ".") for part in parts)
    ):
        raise BundleMalformed(f"the bundle holds a path that escapes it: {name!r}")


def _read(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str) -> bytes:
    _check_name(name)
    info = members.get(name)
    if info is None or info.is_dir():
        raise BundleMalformed(f"manifest.json names {name!r}, which the bundle does not hold")
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, ValueError,
            OSError, EOFError) as exc:  # fmt: skip
        raise BundleMalformed(f"{name!r} does not unpack: {exc}") from None


def _manifest(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo]) -> dict[str, Any]:
    if MANIFEST not in members:
        raise BundleMalformed("the bundle has no manifest.json")
    if members[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise BundleMalformed("manifest.json is too large")
    raw = _read(archive, members, MANIFEST)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BundleMalformed("manifest.json is not JSON (UTF-8)") from None
    if not isinstance(manifest, dict):
        raise BundleMalformed("manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleMalformed(f"unknown bundle format {manifest.get('format')!r}, not {FORMAT!r}")
    return manifest


def _bundle(manifest: dict[str, Any], read: Callable[[str], bytes]) -> Bundle:
    exported_at = parse_time(_field(manifest, "exported_at", str))
    subject = _field(manifest, "subject", dict)
    for key in SUBJECT_KEYS:
        if key not in subject:
            raise BundleMalformed(f"manifest.json: subject has no {key!r}")
    if not all(isinstance(v, str | None) for v in subject.values()):
        raise BundleMalformed("manifest.json: subject values must be strings or null")
    timestamp = _optional_name(manifest, "timestamp")
    package = _optional_name(manifest, "package")
    listed = _field(manifest, "entries", list)
    if len(listed) > MAX_ENTRIES:
        raise BundleMalformed(f"manifest.json lists {len(listed)} entries, more than {MAX_ENTRIES}")
    entries = [_entry(item, read) for item in listed]
    indexes = [e.index for e in entries]
    if len(set(indexes)) != len(indexes):
        raise BundleMalformed("manifest.json lists one log index twice")
    return Bundle(
        subject=dict(subject),
        head=read(_field(manifest, "head", str)),
        timestamp=read(timestamp) if timestamp is not None else None,
        hub_certificate=read(_field(manifest, "hub_certificate", str)),
        entries=tuple(sorted(entries, key=lambda e: e.index)),
        package=read(package) if package is not None else None,
        exported_at=exported_at,
        revocation=_revocation(manifest, read),
    )


def _revocation(manifest: dict[str, Any], read: Callable[[str], bytes]) -> tuple[
        RevocationFile, ...]:  # fmt: skip
    """The optional ``revocation`` list: each a CRL or OCSP response named by its SHA-256."""
    listed = manifest.get("revocation", [])
    if not isinstance(listed, list) or len(listed) > MAX_REVOCATION:
        raise BundleMalformed(f"manifest.json: 'revocation' is not a list of at most "
                              f"{MAX_REVOCATION} files")  # fmt: skip
    found = []
    for item in listed:
        if not isinstance(item, dict) or item.get("kind") not in REVOCATION_KINDS:
            raise BundleMalformed("manifest.json: a revocation file is not {\"file\", \"kind\": "
                                  "\"crl\" or \"ocsp\"}")  # fmt: skip
        material = RevocationFile(item["kind"], read(_field(item, "file", str)))
        if material.file != item["file"]:
            raise BundleMalformed(f"{item['file']!r} is not named by its SHA-256 and kind")
        found.append(material)
    return tuple(found)


def _unique(materials: tuple[RevocationFile, ...]) -> list[RevocationFile]:
    return sorted({m.file: m for m in materials}.values(), key=lambda m: m.file)


def _entry(item: Any, read: Callable[[str], bytes]) -> BundleEntry:
    if not isinstance(item, dict):
        raise BundleMalformed("manifest.json: an entry is not an object")
    type_ = _field(item, "type", str)
    if type_ not in ENTRY_TYPES:
        raise BundleMalformed(f"manifest.json: unknown entry type {type_!r}")
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_INDEX:
        raise BundleMalformed(f"manifest.json: entry index {index!r} is not a log index")
    path = _field(item, "path", list)
    if len(path) > MAX_PATH_LENGTH or not all(
        isinstance(h, str) and _HEX64.fullmatch(h) for h in path
    ):
        raise BundleMalformed(f"manifest.json: the path of entry {index} is not a list of "
                              "hashes (64 lowercase hex digits)")  # fmt: skip
    name = _field(item, "file", str)
    return BundleEntry(type_, index, read(name), tuple(bytes.fromhex(h) for h in path))


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise BundleMalformed(f"manifest.json: {key!r} is missing or not a {kind.__name__}")
    return value


def _optional_name(manifest: dict[str, Any], key: str) -> str | None:
    value = manifest.get(key)
    if value is not None and not isinstance(value, str):
        raise BundleMalformed(f"manifest.json: {key!r} is neither a file name nor null")
    return value
