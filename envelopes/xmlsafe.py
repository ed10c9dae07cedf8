"""Hardened XML reading: the only way Axis turns untrusted bytes into a tree.

No DTD, no entities, no network, no huge trees; size and depth are bounded;
only UTF-8 is accepted. Signature verification and the envelope parser both
start here, so a hostile input is refused once, the same way, with a coded error.
"""

from __future__ import annotations

import codecs
import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from lxml import etree

from envelopes.errors import EnvelopeTooDeep, EnvelopeTooLarge, ForbiddenXmlConstruct, MalformedXml


@dataclass(frozen=True, slots=True)
class XmlLimits:
    """Bounds on an untrusted document."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64
    max_unzipped_bytes: int = 256 * 1024 * 1024  # all builder-zipped attachments, inflated


DEFAULT_LIMITS = XmlLimits()

_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "remove_comments": False,
    "remove_pis": False,
    "huge_tree": True,  # large base64 text nodes are legitimate; size is bounded by XmlLimits
    "collect_ids": False,
    "encoding": "utf-8",  # never let libxml2 guess: only UTF-8 is accepted
}
# Per-thread parsers: a parser's error_log describes its last parse only (the exception's
# log is a process-wide accumulation), and threads must not read each other's.
_LOCAL = threading.local()

_FOREIGN_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# One vendor sample (edoc_new.edxml) starts with a few stray digits before the XML
# declaration; that exact quirk, and nothing wider, is tolerated.
_STRAY_DIGITS = re.compile(rb"[0-9]{1,8}(?=<\?xml[ \t\r\n])")
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def parse_tree(raw: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an element tree, refusing anything hostile.

    Raises :class:`EnvelopeTooLarge`, :class:`ForbiddenXmlConstruct`,
    :class:`MalformedXml` or :class:`EnvelopeTooDeep`. A :class:`MalformedXml`
    whose only faults are namespace errors (an undeclared prefix) carries
    ``detail["namespace_only"] = True``, so a caller may diagnose further with
    :func:`recover_tree`.
    """
    data = _prologue(raw, limits)
    parser = _parser(recover=False)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, parser, limits) from None
    _check_tree(root, limits)
    return root


def recover_tree(raw: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse with libxml2's recovery, for diagnosis only: never to accept a package.

    The same refusals as :func:`parse_tree` apply (size, DOCTYPE, entities, depth,
    encoding); only well-formedness faults are repaired.
    """
    data = _prologue(raw, limits)
    parser = _parser(recover=True)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, parser, limits) from None
    if root is None:
        raise MalformedXml("not well-formed XML: nothing could be recovered")
    _check_tree(root, limits)
    return root


def _prologue(raw: bytes, limits: XmlLimits) -> bytes:
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedXml("input is not bytes")
    if len(raw) > limits.max_bytes:
        raise EnvelopeTooLarge(
            f"{len(raw)} bytes exceeds the limit of {limits.max_bytes}",
            size=len(raw), limit=limits.max_bytes,
        )
    data = bytes(raw)
    if data.startswith(_FOREIGN_BOMS) or b"\x00" in data:
        raise MalformedXml("only UTF-8 is accepted (the input looks like UTF-16/32)")
    _refuse_doctype(data)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    stray = _STRAY_DIGITS.match(data)
    if stray:
        data = data[stray.end():]
    if not data.lstrip(b" \t\r\n").startswith(b"<"):
        raise MalformedXml("not XML: the input does not start with '<'")
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        name = declared.group(1).decode("ascii")
        raise MalformedXml(f"only UTF-8 is accepted (the document declares {name})")
    return data


def _parser(recover: bool) -> etree.XMLParser:
    key = "recovering" if recover else "strict"
    parser: etree.XMLParser | None = getattr(_LOCAL, key, None)
    if parser is None:
        parser = etree.XMLParser(recover=recover, **_OPTIONS)  # type: ignore[arg-type]
        setattr(_LOCAL, key, parser)
    return parser


def _syntax_error(exc: etree.XMLSyntaxError, parser: etree.XMLParser,
                  limits: XmlLimits) -> MalformedXml | EnvelopeTooDeep:
    entries = list(cast(Iterable[Any], parser.error_log))
    if any("depth" in e.message.lower() and e.type_name == "ERR_RESOURCE_LIMIT" for e in entries):
        return EnvelopeTooDeep(f"nesting deeper than {limits.max_depth} elements",
                               limit=limits.max_depth)
    namespace_only = bool(entries) and all(e.domain_name == "NAMESPACE" for e in entries)
    return MalformedXml(f"not well-formed XML: {exc.msg}", line=exc.lineno,
                        namespace_only=namespace_only)


def _check_tree(root: etree._Element, limits: XmlLimits) -> None:
    tree = root.getroottree()
    if getattr(tree.docinfo, "doctype", "") or tree.docinfo.internalDTD is not None:
        raise ForbiddenXmlConstruct("a DOCTYPE declaration is not allowed")
    _check_depth_and_entities(root, limits.max_depth)


def _refuse_doctype(data: bytes) -> None:
    # Refused before parsing so no DTD machinery ever runs on hostile input. The whole
    # input is scanned (comments may push a DOCTYPE past any fixed prefix); "<!" cannot
    # appear unescaped in text, so only comments or CDATA could trip this falsely.
    pos = data.find(b"<!")
    while pos != -1:
        word = data[pos + 2:pos + 9].upper()
        if word.startswith((b"DOCTYPE", b"ENTITY")):
            raise ForbiddenXmlConstruct("a DOCTYPE or ENTITY declaration is not allowed")
        pos = data.find(b"<!", pos + 2)


def _check_depth_and_entities(root: etree._Element, max_depth: int) -> None:
    # Both checks run in libxml2 rather than a Python walk over every node: one
    # element at depth max_depth + 1 exists exactly when the tree is too deep.
    for entity in root.iter(etree.Entity):
        name = cast(etree._Entity, entity).name
        raise ForbiddenXmlConstruct(f"entity reference &{name}; is not allowed")
    if _too_deep(max_depth)(root):
        raise EnvelopeTooDeep(f"nesting deeper than {max_depth} elements", limit=max_depth)


@functools.lru_cache(maxsize=8)
def _too_deep(max_depth: int) -> etree.XPath:
    return etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
