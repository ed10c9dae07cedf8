"""The documentation names what the code has: commands, wire names, settings, links."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from axis.provision import system_permissions
from axis.settings import _ENV_OVERRIDES, Settings
from cli import app
from routing import contract, contract_attachments, topology

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
ASYNCAPI = DOCS / "asyncapi.yaml"
OWN_DOCS = (
    README,
    DOCS / "protocol.md",
    DOCS / "errors.md",
    DOCS / "clerk-guide.md",
    DOCS / "auditor-guide.md",
    DOCS / "operator-guide.md",
    DOCS / "architecture.md",
)
HEADERS = sorted(v for k, v in vars(contract).items() if k.startswith("H_"))

# -- commands --------------------------------------------------------------------------


def _root() -> Any:
    """The ``axis`` command as typer builds it (a group: it has ``commands``)."""
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: object) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _named_commands(text: str) -> set[tuple[str, ...]]:
    """Every ``axis <cmd> [<sub>]`` the text names in backticks or code blocks."""
    found: set[tuple[str, ...]] = set()
    for match in re.finditer(r"(?:^|[`$]\s?|\n\s*)axis((?: [a-z][a-z-]*){1,2})", text):
        found.add(tuple(match.group(1).split()))
    return found


def _resolve(words: tuple[str, ...]) -> list[str]:
    """The command path ``words`` names: a command, or a group and one of its commands."""
    group = _root()
    first = group.commands.get(words[0])
    assert first is not None, f"`axis {' '.join(words)}`: no command {words[0]!r}"
    if not _is_group(first):
        return [words[0]]
    if len(words) > 1 and words[1] in first.commands:
        return [words[0], words[1]]
    # A group with a default command: `axis status DOC …` is `axis status send DOC …`.
    if getattr(first, "default_command", None) in first.commands:
        return [words[0]]
    assert len(words) > 1, f"`axis {words[0]}` is a group: name one of its commands"
    raise AssertionError(f"`axis {' '.join(words)}`: no command {words[1]!r}")


def _readme_commands() -> list[list[str]]:
    paths = {tuple(_resolve(w)) for w in _named_commands(README.read_text(encoding="utf-8"))}
    return [list(p) for p in sorted(paths)]


def test_readme_names_commands() -> None:
    assert len(_readme_commands()) >= 20


@pytest.mark.parametrize("path", _readme_commands(), ids=" ".join)
def test_readme_command_exists_and_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output


def test_readme_lists_every_command() -> None:
    listed = {tuple(p) for p in _readme_commands()}
    for name, command in _root().commands.items():
        if _is_group(command):
            for sub in command.commands:
                assert (name, sub) in listed, f"README does not list `axis {name} {sub}`"
        else:
            assert (name,) in listed, f"README does not list `axis {name}`"


@pytest.mark.parametrize("doc", OWN_DOCS[1:], ids=lambda p: p.name)
def test_guides_name_only_existing_commands(doc: Path) -> None:
    for words in _named_commands(doc.read_text(encoding="utf-8")):
        _resolve(words)


def test_python_m_cli_help_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "send", "--help"], cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_quick_start_is_the_two_make_targets() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"## Quick start.*?```console\n(.*?)```", text, flags=re.DOTALL)
    assert block is not None
    assert block.group(1).split("\n")[:-1] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "lint", "bench"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


# -- protocol.md -------------------------------------------------------------------------


def test_protocol_names_every_wire_name() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    names = [
        contract.SUBMIT_EXCHANGE, contract.QUERY_EXCHANGE, contract.DELIVER_EXCHANGE,
        contract.DEAD_EXCHANGE, contract.EDOC_KEY, contract.STATUS_KEY, contract.QUERY_KEY,
        contract.inbox_queue_name("<system id>"), contract.TYPE_EDOC, contract.TYPE_STATUS,
        contract.TYPE_RECEIPT, *HEADERS,
    ]  # fmt: skip
    for name in names:
        assert f"`{name}`" in text, name
    assert f"`x-delivery-limit: {topology.SUBMIT_DELIVERY_LIMIT}`" in text
    assert "**fanout** exchange" in text and contract.EXCHANGE_TYPES["axis.dead"] == "fanout"


def test_protocol_states_the_provisioned_permissions() -> None:
    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    permissions = system_permissions("000.00.00.G22")
    assert f"`{permissions['configure']}`" in text
    assert f"write `{permissions['write']}`" in text
    assert f"read\n`{permissions['read']}`" in text or f"read `{permissions['read']}`" in text


def test_protocol_receipt_example_matches_the_builder() -> None:
    from datetime import UTC, datetime

    from axis.receipts import RECEIPT_NS, receipt_xml
    from envelopes.attachment_refs import AttachmentRef
    from routing.values import Receipt

    text = (DOCS / "protocol.md").read_text(encoding="utf-8")
    assert RECEIPT_NS in text
    built = receipt_xml(
        Receipt(
            receipt_id="r", event="rejected", message_id="m", package_sha256="0",
            hub_time=datetime(2026, 1, 1, tzinfo=UTC), error_code="x.y", reason="z",
            signer_fingerprint="f", status_code="03",  # every optional element, in order
            attachments=(AttachmentRef("a.tif", 1, "0" * 64),),
        )
    ).decode()  # fmt: skip
    element_order = re.findall(r"<axis:([A-Za-z]+)", built)
    documented = re.findall(r"<axis:([A-Za-z]+)", text.split("### Receipt XML")[1])
    documented_order = list(dict.fromkeys(documented))
    assert list(dict.fromkeys(element_order)) == documented_order


# -- operator-guide.md ---------------------------------------------------------------------


def test_operator_guide_documents_every_setting_and_override() -> None:
    text = (DOCS / "operator-guide.md").read_text(encoding="utf-8")
    for name in Settings.__dataclass_fields__:
        if name != "home":
            assert f"| `{name}` |" in text, name
    for variable in _ENV_OVERRIDES:
        assert f"`{variable}`" in text, variable


# -- asyncapi.yaml -------------------------------------------------------------------------


def test_asyncapi_declares_version_3_and_the_topology_names() -> None:
    text = ASYNCAPI.read_text(encoding="utf-8")
    assert re.search(r"^asyncapi: 3\.0\.0$", text, flags=re.MULTILINE)
    for name in (contract.SUBMIT_EXCHANGE, contract.QUERY_EXCHANGE, contract.DELIVER_EXCHANGE,
                 contract.DEAD_EXCHANGE):  # fmt: skip
        assert re.search(rf"^    address: {re.escape(name)}$", text, flags=re.MULTILINE), name
    for header in HEADERS:
        assert f"{header}:" in text, header


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    loaded = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_asyncapi_parses_as_version_3(spec: dict[str, Any]) -> None:
    assert str(spec["asyncapi"]) == "3.0.0"
    assert {"info", "channels", "operations", "components"} <= set(spec)
    assert spec["info"]["title"] and spec["info"]["version"]


def test_asyncapi_channel_addresses_are_the_topology(spec: dict[str, Any]) -> None:
    addresses = {c["address"] for c in spec["channels"].values()}
    expected = {
        contract.SUBMIT_EXCHANGE, contract.QUERY_EXCHANGE, contract.DELIVER_EXCHANGE,
        contract.DEAD_EXCHANGE, contract.inbox_queue_name("{systemId}"), None,
    }  # fmt: skip
    assert addresses == expected
    for channel in spec["channels"].values():
        binding = channel.get("bindings", {}).get("amqp")
        if binding and binding["is"] == "routingKey":
            exchange = binding["exchange"]
            assert exchange["name"] == channel["address"]
            assert exchange["type"] == contract.EXCHANGE_TYPES[exchange["name"]]


def test_asyncapi_routing_keys_are_the_topology(spec: dict[str, Any]) -> None:
    keys = {
        key
        for op in spec["operations"].values()
        for key in op.get("bindings", {}).get("amqp", {}).get("cc", [])
    }
    assert keys == {contract.EDOC_KEY, contract.STATUS_KEY, contract.QUERY_KEY,
                    *contract_attachments.ATTACHMENT_KEYS}


def test_asyncapi_headers_are_the_message_module(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    attachment = set(schemas["attachmentHeaders"]["properties"])
    assert attachment == {contract_attachments.H_SHA256, contract_attachments.H_SIZE,
                          contract_attachments.H_INDEX, contract_attachments.H_CHUNK_SHA256,
                          contract_attachments.H_OWNER}  # fmt: skip
    delivery = set(schemas["deliveryHeaders"]["properties"])
    receipt = set(schemas["receiptHeaders"]["properties"])
    dead = set(schemas["deadLetterHeaders"]["properties"])
    assert delivery | receipt | dead == set(HEADERS)
    assert dead == {contract.H_ORIGIN_USER, contract.H_ATTEMPT, contract.H_DEAD_REASON,
                    contract.H_LAST_ERROR}  # fmt: skip
    assert receipt == {
        contract.H_EVENT, contract.H_CONSIGNMENT, contract.H_DOCUMENT_ID, contract.H_ERROR_CODE,
        contract.H_STATUS_CODE, contract.H_LOG_INDEX,
    }  # fmt: skip


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _lookup(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def test_asyncapi_refs_resolve(spec: dict[str, Any]) -> None:
    refs = list(_refs(spec))
    assert refs
    for ref in refs:
        _lookup(spec, ref)


def test_asyncapi_operations_use_their_channels_messages(spec: dict[str, Any]) -> None:
    for name, op in spec["operations"].items():
        assert op["action"] in {"send", "receive"}, name
        channel_ref = op["channel"]["$ref"]
        for message in op.get("messages", []):
            assert message["$ref"].startswith(channel_ref + "/messages/"), (name, message)
        reply = op.get("reply")
        if reply:
            for message in reply.get("messages", []):
                assert message["$ref"].startswith(reply["channel"]["$ref"] + "/messages/")


# -- links ---------------------------------------------------------------------------------


def _slug(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}


@pytest.mark.parametrize("doc", OWN_DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            continue
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        assert path.exists(), f"{doc.name}: broken link {target}"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{doc.name}: no heading #{anchor} in {path.name}"


def test_readme_links_every_guide() -> None:
    text = README.read_text(encoding="utf-8")
    for doc in sorted(DOCS.iterdir()):
        if doc.suffix in {".md", ".yaml"}:
            assert f"(docs/{doc.name})" in text, doc.name
