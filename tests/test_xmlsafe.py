"""The hardened XML reader: every hostile input ends in its own coded error."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envelopes.builder import attachment_from_bytes, build_package, document_from_metadata
from envelopes.errors import (
    AxisError,
    EnvelopeTooDeep,
    EnvelopeTooLarge,
    ForbiddenXmlConstruct,
    MalformedXml,
)
from envelopes.parser import parse_package
from envelopes.xmlsafe import XmlLimits, parse_tree, recover_tree

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz a="&lol4;">&lol4;</lolz>"""

ATTACKS: list[tuple[str, bytes, type[AxisError]]] = [
    ("doctype", b'<?xml version="1.0"?><!DOCTYPE edXML><edXML/>', ForbiddenXmlConstruct),
    ("external entity",
     b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
     ForbiddenXmlConstruct),
    ("billion laughs", BILLION_LAUGHS, ForbiddenXmlConstruct),
    ("external DTD", b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
     ForbiddenXmlConstruct),
    ("parameter entity",
     b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><x/>', ForbiddenXmlConstruct),
    ("doctype hidden behind a long comment",
     b"<!--" + b"x" * 10_000 + b'--><!doctype x [<!ENTITY e "boom">]><x>&e;</x>',
     ForbiddenXmlConstruct),
    ("lower-case doctype", b'<!doctype x><x/>', ForbiddenXmlConstruct),
    ("nesting 10,000 deep", b"<a>" * 10_000 + b"</a>" * 10_000, EnvelopeTooDeep),
    ("nesting 65 deep", b"<a>" * 65 + b"</a>" * 65, EnvelopeTooDeep),
    ("garbage bytes", bytes(range(1, 256)), MalformedXml),
    ("png header", b"\x89PNG\r\n\x1a\n\x00\x00", MalformedXml),
    ("empty input", b"", MalformedXml),
    ("unclosed element", b"<edXML><a></edXML>", MalformedXml),
    ("undefined entity", b"<x>&foo;</x>", MalformedXml),
    ("invalid UTF-8", b"<x>\xff\xfe\xfd</x>", MalformedXml),
    ("declared ISO-8859-1", b'<?xml version="1.0" encoding="ISO-8859-1"?><x>\xe9</x>',
     MalformedXml),
    ("UTF-16 with BOM", '<?xml version="1.0" encoding="UTF-16"?><x/>'.encode("utf-16"),
     MalformedXml),
    ("UTF-16 without BOM", "<x/>".encode("utf-16-le"), MalformedXml),
    ("UTF-32", "<x/>".encode("utf-32"), MalformedXml),
    ("EBCDIC", '<?xml version="1.0" encoding="IBM037"?><x/>'.encode("cp037"), MalformedXml),
    ("NUL byte", b"<x>\x00</x>", MalformedXml),
    ("undeclared prefix", b"<x><p:y/></x>", MalformedXml),
]


@pytest.mark.parametrize(("raw", "error"), [pytest.param(r, e, id=n) for n, r, e in ATTACKS])
def test_attack_gets_its_coded_error(raw: bytes, error: type[AxisError]) -> None:
    with pytest.raises(error) as caught:
        parse_tree(raw)
    assert type(caught.value) is error
    assert caught.value.code == error.code


@pytest.mark.parametrize(("raw", "error"), [pytest.param(r, e, id=n) for n, r, e in ATTACKS])
def test_attack_through_parse_package_is_refused_the_same_way(
        raw: bytes, error: type[AxisError]) -> None:
    with pytest.raises(error):
        parse_package(raw)


def test_oversize_input_is_refused_before_parsing() -> None:
    raw = b"<x>" + b"a" * 2000 + b"</x>"
    with pytest.raises(EnvelopeTooLarge) as caught:
        parse_tree(raw, XmlLimits(max_bytes=1000))
    assert caught.value.detail == {"size": len(raw), "limit": 1000}


def test_depth_limit_is_configurable() -> None:
    raw = b"<a>" * 10 + b"</a>" * 10
    assert parse_tree(raw, XmlLimits(max_depth=10)).tag == "a"
    with pytest.raises(EnvelopeTooDeep):
        parse_tree(raw, XmlLimits(max_depth=9))


@pytest.mark.parametrize(("raw", "tag"), [
    (b'<?xml version="1.0" encoding="UTF-8"?><x/>', "x"),
    (b"\xef\xbb\xbf<x/>", "x"),
    (b'1212<?xml version="1.0" encoding="UTF-8"?>\n<x/>', "x"),  # the edoc_new.edxml quirk
    (b"  \n<x><!-- <b> --></x>", "x"),
    (b"<?xml version='1.0' encoding='utf8'?><x/>", "x"),
])
def test_tolerated_inputs(raw: bytes, tag: str) -> None:
    assert parse_tree(raw).tag == tag


@pytest.mark.parametrize("raw", [
    b"123456789<?xml version='1.0'?><x/>",  # more stray digits than the known quirk
    b"ab<?xml version='1.0'?><x/>",
    b"12<x/>",
])
def test_stray_prefix_is_tolerated_only_in_its_known_form(raw: bytes) -> None:
    with pytest.raises(MalformedXml):
        parse_tree(raw)


def test_namespace_only_fault_is_flagged_for_diagnosis() -> None:
    with pytest.raises(MalformedXml) as caught:
        parse_tree(b"<x><p:y/></x>")
    assert caught.value.detail["namespace_only"] is True
    with pytest.raises(MalformedXml) as other:
        parse_tree(b"<x><y></x>")
    assert other.value.detail["namespace_only"] is False


def test_recover_tree_repairs_namespaces_but_keeps_refusals() -> None:
    assert recover_tree(b"<x><p:y/></x>").tag == "x"
    with pytest.raises(ForbiddenXmlConstruct):
        recover_tree(BILLION_LAUGHS)
    with pytest.raises(EnvelopeTooDeep):
        recover_tree(b"<a>" * 100 + b"</a>" * 100)


def test_non_bytes_input_is_malformed() -> None:
    with pytest.raises(MalformedXml):
        parse_tree("<x/>")  # type: ignore[arg-type]


def _parse_or_axis_error(raw: bytes) -> None:
    # Any exception other than an AxisError escapes and fails the test.
    with contextlib.suppress(AxisError):
        parse_package(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_axis_errors(raw: bytes) -> None:
    _parse_or_axis_error(raw)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="<>/=\"' abx:&;!?-[]DOCTYPEENTITY\n", max_size=300))
def test_random_markup_only_raises_axis_errors(text: str) -> None:
    _parse_or_axis_error(text.encode())


SEED = build_package(document_from_metadata({
    "from": "000.00.00.G22", "to": [{"organ_id": "000.00.00.H41"}], "code": "1/X",
    "promulgation_date": "2024/05/06", "subject": "Thử", "priority": 1,
    "trace": [{"organ_id": "000.00.00.G22", "timestamp": "2024/05/06 08:00:00"}],
    "business": {"doc_type": 0, "staff": {"staff": "A"}},
}, [attachment_from_bytes("a.txt", b"hello" * 50)]))


@st.composite
def _mutated(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "delete", "insert", "duplicate"]))
        if action == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif action == "delete":
            del raw[at:at + draw(st.integers(1, 40))]
        elif action == "insert":
            raw[at:at] = draw(st.sampled_from([b"<", b">", b"&", b"<x>", b"</", b"\xff", b"=",
                                               b"<!--", b"<![CDATA[", b"9", b"A"]))
        else:
            end = min(len(raw), at + draw(st.integers(1, 200)))
            raw[at:at] = raw[at:end]
        if not raw:
            break
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_packages_only_raise_axis_errors(conformance_dir: Path,
                                                 data: st.DataObject) -> None:
    seeds = (SEED, *((conformance_dir / n).read_bytes()
                     for n in ("status.edxml", "edoc.edxml", "vnpt-builder-output.edxml")))
    _parse_or_axis_error(data.draw(_mutated(seeds)))
