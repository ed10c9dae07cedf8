"""Schema validation of edXML trees: the bundled XSD plus the checks XSD 1.0 cannot say.

:func:`validate_tree` is the hot path (libxml2 via lxml, compiled once at import).
:func:`explain` lists every fault in detail with the ``xmlschema`` package, which
is far slower: use it for diagnostics and CLI output, not for every message.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, cast

from lxml import etree

from envelopes.dates import DATE_LAYOUT, TIMESTAMP_LAYOUT, parse_date, parse_timestamp
from envelopes.errors import SchemaViolation
from envelopes.model import NS

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
SCHEMA_PATH = SCHEMA_DIR / "edxml-qcvn102-2016.xsd"

_SCHEMA_DOC = etree.parse(str(SCHEMA_PATH))
# A validator's error log is per instance: one compiled schema per thread keeps them apart.
_LOCAL = threading.local()
_Q = f"{{{NS}}}"
_ROOT = f"{_Q}edXML"
_MESSAGE_HEADER = f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}MessageHeader"
_TRACE_HEADER_LIST = f"{_Q}edXMLEnvelope/{_Q}edXMLHeader/{_Q}TraceHeaderList"
_STATUS_CODE = f"{_Q}StatusCode"

Kind = Literal["edoc", "status"]
_WHAT = {"edoc": "document", "status": "status"}
_CALENDAR_FIELDS: dict[str, tuple[Callable[[str], object], str]] = {
    "PromulgationDate": (parse_date, DATE_LAYOUT),
    "DueDate": (parse_date, DATE_LAYOUT),
    "Timestamp": (parse_timestamp, TIMESTAMP_LAYOUT),
}
_CALENDAR_TAGS = tuple(f"{_Q}{name}" for name in _CALENDAR_FIELDS)
_UNBOUNDED = 1 << 30

# How often each MessageHeader child may occur, per package kind; absent = not allowed.
CARDINALITY: dict[Kind, dict[str, tuple[int, int]]] = {
    "edoc": {
        "From": (1, 1), "To": (1, _UNBOUNDED), "Code": (1, 1), "PromulgationInfo": (1, 1),
        "DocumentType": (1, 1), "Subject": (1, 1), "Content": (0, 1), "SignerInfo": (0, 1),
        "DueDate": (0, 1), "ToPlaces": (0, 1), "OtherInfo": (0, 1),
        "ResponseFor": (0, _UNBOUNDED), "SteeringType": (0, 1), "DocumentId": (1, 1),
    },
    "status": {
        "From": (1, 1), "ResponseFor": (1, 1), "StaffInfo": (0, 1), "StatusCode": (1, 1),
        "Description": (0, 1), "Timestamp": (1, 1),
    },
}


def package_kind(root: etree._Element) -> Kind:
    """``"status"`` when the MessageHeader has a ``StatusCode``, else ``"edoc"``.

    Raises :class:`SchemaViolation` when the tree is not an edXML package at all.
    """
    return _kind_and_header(root)[0]


def validate_tree(root: etree._Element) -> None:
    """Validate a parsed package; raise :class:`SchemaViolation` (reason, element path)."""
    validate_package(root)


def validate_package(root: etree._Element) -> tuple[Kind, etree._Element]:
    """:func:`validate_tree`, then the package's kind and its ``MessageHeader`` element."""
    schema = _schema()
    if not schema.validate(root):
        entry = next(iter(cast(Iterable[Any], schema.error_log)))
        located = _locate(root, entry.path)
        path = element_path(located) if located is not None else entry.path
        raise SchemaViolation(_plain(entry.message), path=path, line=entry.line)
    kind, header = _kind_and_header(root)
    faults = _structural_faults(root, kind, header)
    if faults:
        reason, path = faults[0]
        raise SchemaViolation(reason, path=path)
    return kind, header


def structural_faults(root: etree._Element) -> list[tuple[str, str]]:
    """The faults the XSD cannot express, as ``(reason, path)``; [] for a good package."""
    return _structural_faults(root, *_kind_and_header(root))


def _kind_and_header(root: etree._Element) -> tuple[Kind, etree._Element]:
    if root.tag != _ROOT:
        raise SchemaViolation(f"the root element is {_plain(str(root.tag))!r}, not edXML "
                              f"in namespace {NS}", path=element_path(root))
    header = root.find(_MESSAGE_HEADER)
    if header is None:
        raise SchemaViolation("no edXMLEnvelope/edXMLHeader/MessageHeader",
                              path=element_path(root))
    status = next(header.iterchildren(_STATUS_CODE), None) is not None
    return ("status" if status else "edoc"), header


def _structural_faults(
    root: etree._Element, kind: Kind, header: etree._Element
) -> list[tuple[str, str]]:
    faults = _cardinality_faults(header, kind)
    faults.extend(_calendar_faults(header))
    trace = root.find(_TRACE_HEADER_LIST)
    if trace is not None:
        faults.extend(_calendar_faults(trace))
    if kind == "status":
        faults.extend(_status_faults(root, header))
    return faults


def explain(root: etree._Element) -> list[str]:
    """Every fault, one readable line each (``path: reason``); [] when the package is valid.

    Slow (``xmlschema``); not for the hot path.
    """
    # xmlschema counts lxml comments as children of simple-content elements: drop them.
    bare = copy.deepcopy(root)
    etree.strip_tags(bare, etree.Comment, etree.ProcessingInstruction)
    lines = [f"{err.path}: {_plain(str(err.reason))}" for err in _xmlschema().iter_errors(bare)]
    if not lines:
        try:
            lines = [f"{path}: {reason}" for reason, path in structural_faults(root)]
        except SchemaViolation as exc:
            lines = [f"{exc.path}: {exc.reason}"]
    return lines


def element_path(
    element: etree._Element, name_of: Callable[[etree._Element], str] | None = None
) -> str:
    """``/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/To[2]/OrganId``: local names, or
    what ``name_of`` calls each element."""
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        name = name_of(node) if name_of else etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if c.tag == node.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _schema() -> etree.XMLSchema:
    schema: etree.XMLSchema | None = getattr(_LOCAL, "schema", None)
    if schema is None:
        schema = _LOCAL.schema = etree.XMLSchema(_SCHEMA_DOC)
    return schema


_schema()  # compile at import: a broken bundled schema fails loudly, early


@functools.cache
def _xmlschema() -> Any:
    import xmlschema  # imported lazily: only diagnostics pay for it

    return xmlschema.XMLSchema(str(SCHEMA_PATH), base_url=str(SCHEMA_DIR), allow="sandbox")


def _cardinality_faults(header: etree._Element, kind: Kind) -> list[tuple[str, str]]:
    allowed = CARDINALITY[kind]
    counts: dict[str, int] = {}  # by local name, whatever the namespace
    for child in header.iterchildren(etree.Element):
        name = _local(child.tag)
        counts[name] = counts.get(name, 0) + 1
    faults: list[tuple[str, str]] = []
    for name, count in counts.items():
        if name not in allowed:
            first = header.find(f"{{{NS}}}{name}")
            faults.append((f"{name} is not allowed in the MessageHeader of a {_WHAT[kind]} package",
                           element_path(first if first is not None else header)))
        elif count > allowed[name][1]:
            faults.append((f"{name} occurs {count} times in MessageHeader; at most "
                           f"{allowed[name][1]} allowed", element_path(header)))
    for name, (least, _) in allowed.items():
        if counts.get(name, 0) < least:
            faults.append((f"missing required element {name} in the MessageHeader of a "
                           f"{_WHAT[kind]} package", element_path(header)))
    return faults


def _calendar_faults(block: etree._Element) -> list[tuple[str, str]]:
    # The XSD patterns admit 2024/02/30; the calendar does not.
    faults: list[tuple[str, str]] = []
    for el in block.iter(*_CALENDAR_TAGS):
        value = " ".join((el.text or "").split())
        read, layout = _CALENDAR_FIELDS[_local(el.tag)]
        if not value:
            continue
        try:
            read(value)
        except ValueError:
            faults.append((f"{value!r} is not a real date or time ({layout})",
                           element_path(el)))
    return faults


def _status_faults(root: etree._Element, header: etree._Element) -> list[tuple[str, str]]:
    faults: list[tuple[str, str]] = []
    document_id = header.find(f"{{{NS}}}ResponseFor/{{{NS}}}DocumentId")
    if document_id is None or not (document_id.text or "").strip():
        where = header.find(f"{{{NS}}}ResponseFor")
        faults.append(("a status package must name its document in ResponseFor/DocumentId",
                       element_path(where if where is not None else header)))
    q = f"{{{NS}}}"
    for extra in (f"{q}edXMLEnvelope/{q}edXMLBody/{q}edXMLManifest/{q}Reference",
                  f"{q}AttachmentEncoded/{q}Attachment"):
        found = root.find(extra)
        if found is not None:
            faults.append(("a status package carries no attachments", element_path(found)))
    return faults


def _locate(root: etree._Element, xpath: str | None) -> etree._Element | None:
    if not xpath:
        return None
    namespaces: dict[str, str] = {}
    for node in root.iter():
        if isinstance(node.tag, str):
            namespaces.update({k: v for k, v in node.nsmap.items() if k})
    try:
        found = root.getroottree().xpath(xpath, namespaces=namespaces)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _local(tag: str) -> str:
    """The local name of a Clark-notation tag (what ``etree.QName(tag).localname`` gives)."""
    return tag.rpartition("}")[2]


def _plain(message: str) -> str:
    return message.replace(f"{{{NS}}}", "")
