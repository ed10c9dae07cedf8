"""The clerk's local files, offline: the inbox folder (`axis inbox fetch`) and profiles."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axis.client.agency import InboxItem
from axis.client.inbox_store import InboxStore
from axis.client.profile import Profile, load_profile, profile_toml
from axis.commands.clerk_io import check_message_id, client_amqp_url, sent_paths
from axis.errors import InvalidSettings
from envelopes.builder import attachment_from_bytes, document_from_metadata
from envelopes.model import DocumentPackage
from routing.errors import InvalidMessageId


def package(names: list[str], datas: list[bytes]) -> DocumentPackage:
    return document_from_metadata(
        {
            "from": {"organ_id": "000.00.00.G22", "organ_name": "Văn phòng Chính phủ"},
            "to": [{"organ_id": "000.00.00.H41"}],
            "code": {"number": "1", "notation": "T"},
            "promulgation_date": "2024-03-01",
            "subject": "V/v thử",
        },
        [attachment_from_bytes(n, d) for n, d in zip(names, datas, strict=True)],
    )


def edoc(message_id: str, pkg: DocumentPackage, body: bytes = b"<edXML/>") -> InboxItem:
    return InboxItem(kind="edoc", body=body, message_id=message_id, headers={}, package=pkg)


names = st.text(
    st.sampled_from(["a", "b", ".", "/", "ư", " ", "\\", "-"]), min_size=1, max_size=6
).filter(lambda n: n.strip() != "")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(names, st.binary(max_size=64)), min_size=1, max_size=5))
def test_every_attachment_is_stored_byte_identical_under_its_own_name(
    files: list[tuple[str, bytes]],
) -> None:
    files = [(name, bytes([i]) + data) for i, (name, data) in enumerate(files)]  # distinct ids
    with tempfile.TemporaryDirectory() as tmp:
        pkg = package([n for n, _ in files], [d for _, d in files])
        meta = InboxStore(Path(tmp)).save(edoc("G22/1", pkg))
        folder = Path(tmp) / meta["id"] / "attachments"
        stored = [entry["file"] for entry in meta["attachments"]]
        assert len(set(stored)) == len(files)  # same names never overwrite each other
        assert sorted(p.name for p in folder.iterdir()) == sorted(stored)
        for entry, (_, data) in zip(meta["attachments"], files, strict=True):
            assert "/" not in entry["file"] and not entry["file"].startswith(".")
            assert (folder / entry["file"]).read_bytes() == data


def test_ids_that_map_to_one_folder_do_not_overwrite_each_other(tmp_path: Path) -> None:
    store = InboxStore(tmp_path)
    pkg = package(["a.txt"], [b"1"])
    first = store.save(edoc("G22/1", pkg, b"first"))
    second = store.save(edoc("G22_1", pkg, b"second"))
    again = store.save(edoc("G22/1", pkg, b"first"))  # a redelivered copy: same folder
    assert first["id"] == again["id"] != second["id"]
    assert (tmp_path / first["id"] / "package.edxml").read_bytes() == b"first"
    assert (tmp_path / second["id"] / "package.edxml").read_bytes() == b"second"
    assert store.known_ids() == {"G22/1", "G22_1"}
    assert not list(tmp_path.glob(".*.tmp"))
    meta = json.loads((tmp_path / second["id"] / "meta.json").read_text(encoding="utf-8"))
    assert meta["message_id"] == "G22_1" and meta["document_id"] == pkg.document_id


@pytest.mark.parametrize(
    ("message_id", "ok"),
    [
        ("abc", True),
        ("lo.1", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("lô", False),
        ("a b", False),
        ("", False),
    ],
)
def test_message_id_is_checked_like_the_hub(message_id: str, ok: bool) -> None:
    if ok:
        check_message_id(message_id)
    else:
        with pytest.raises(InvalidMessageId):
            check_message_id(message_id)


def test_sent_files_keep_dots_in_the_consignment_id(tmp_path: Path) -> None:
    assert [p.name for p in sent_paths(tmp_path, "lo.1")] == ["lo.1.edxml", "lo.1.receipt.xml"]
    assert [p.name for p in sent_paths(tmp_path, "../x")] == ["_x.edxml", "_x.receipt.xml"]


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "amqp://127.0.0.1:5672/"),
        ({"AXIS_AMQP_URL": "amqp://guest:secret@10.0.0.5:5673/axis"}, "amqp://10.0.0.5:5673/axis"),
        ({"AXIS_AMQP_URL": "amqps://u:p@[::1]/v"}, "amqps://[::1]/v"),
    ],
)
def test_a_new_profile_takes_the_broker_from_the_environment_without_credentials(
    env: dict[str, str], url: str
) -> None:
    assert client_amqp_url(env) == url


def _profile(tmp_path: Path, amqp_url: str) -> Path:
    values = {
        "system_id": "000.00.00.G22",
        "amqp_url": amqp_url,
        "password": "p@ss:/w",
        "key": "k.pem",
        "cert": "c.pem",
        "hub_cert": "h.pem",
        "ca": "ca.pem",
    }
    path = tmp_path / "p.toml"
    path.write_text(profile_toml(values), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("amqp_url", "broker"),
    [
        ("amqp://127.0.0.1:5672/v", "amqp://000.00.00.G22:p%40ss%3A%2Fw@127.0.0.1:5672/v"),
        ("amqp://[::1]:5672/", "amqp://000.00.00.G22:p%40ss%3A%2Fw@[::1]:5672/"),
    ],
)
def test_profile_broker_url_carries_the_system_account(
    tmp_path: Path, amqp_url: str, broker: str
) -> None:
    profile = load_profile(_profile(tmp_path, amqp_url))
    assert isinstance(profile, Profile) and profile.broker_url() == broker


@pytest.mark.parametrize("amqp_url", ["http://127.0.0.1/", "amqp:///v", "amqp://h:99999/"])
def test_profile_with_a_bad_broker_url_is_refused(tmp_path: Path, amqp_url: str) -> None:
    with pytest.raises(InvalidSettings):
        load_profile(_profile(tmp_path, amqp_url))
