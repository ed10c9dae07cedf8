"""Certificates near their end: `axis agency list` flags them, a hub gauge counts them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from axis.metrics import HubMetrics
from axis.settings import load_settings, write_default_config
from axis.store import Store
from cli import app
from signing.pki import Credential, issue_agency, new_ca
from tests.clikit import organ
from tests.hubkit import HubKit

NOW = datetime.now(UTC)
GAUGE = "axis_certificates_expiring"
# name: (days from now to not_after, revoked, flagged)
CERTIFICATES = {
    "LONG": (400, False, False),
    "SOON": (10, False, True),
    "GONE": (-1, False, True),
    "REVOKED": (10, True, False),
}


def _issue(ca: Credential, organ_id: str, days: int) -> bytes:
    not_after = NOW + timedelta(days=days)
    return issue_agency(ca, organ_id, f"Cơ quan {organ_id}", NOW, key_type="ec",
                        not_before=not_after - timedelta(days=60),
                        not_after=not_after).cert_pem  # fmt: skip


def _register_all(store: Store) -> dict[str, str]:
    """One system per case; its organ id by case name."""
    ca = new_ca("Test CA", NOW)
    ids = {}
    for name, (days, revoked, _) in CERTIFICATES.items():
        system_id = ids[name] = organ(name)
        store.add_system(system_id, f"Hệ thống {name}")
        record = store.add_certificate(system_id, _issue(ca, system_id, days))
        if revoked:
            store.revoke_certificate(system_id, record.fingerprint)
    return ids


def test_agency_list_flags_expired_and_soon_expiring_certificates(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    write_default_config(home)
    store = Store(load_settings(home, {}).db_url)
    store.create_all()
    try:
        ids = _register_all(store)
    finally:
        store.dispose()
    runner = CliRunner()
    listed = runner.invoke(app, ["agency", "list", "--home", str(home), "--json"], env={})
    assert listed.exit_code == 0, listed.output
    systems = {s["system_id"]: s for s in json.loads(listed.output)["systems"]}
    for name, (days, _, flagged) in CERTIFICATES.items():
        [cert] = systems[ids[name]]["certificates"]
        assert cert["expiring_soon"] is flagged, name
        assert cert["expired"] is (days < 0), name
    text = runner.invoke(app, ["agency", "list", "--home", str(home)], env={}).output
    flags = [line.split() for line in text.splitlines() if "certificate" in line]
    assert sorted((words[2], words[1][:8]) for words in flags) == sorted(
        [("EXPIRED", _fingerprint(systems[ids["GONE"]])[:8]),
         ("expires", _fingerprint(systems[ids["SOON"]])[:8])])  # fmt: skip


def _fingerprint(system: dict[str, object]) -> str:
    certificates = system["certificates"]
    assert isinstance(certificates, list)
    return str(certificates[0]["fingerprint"])


def test_gauge_counts_unrevoked_certificates_within_30_days(store: Store) -> None:
    clock = [NOW]
    metrics = HubMetrics(clock=lambda: clock[0])
    assert metrics.registry.get_sample_value(GAUGE) == 0
    _register_all(store)
    metrics.registry_loaded(store.load_snapshot())
    assert metrics.registry.get_sample_value(GAUGE) == 2  # SOON and GONE
    clock[0] = NOW + timedelta(days=380)  # read when scraped: LONG comes within 30 days
    assert metrics.registry.get_sample_value(GAUGE) == 3


@pytest.mark.rabbitmq
async def test_the_hub_sets_the_gauge_when_it_reloads_its_registry(kit: HubKit) -> None:
    assert kit.hub is not None
    a = await kit.agency(organ("A"))
    assert kit.metrics.registry.get_sample_value(GAUGE) == 0
    ca = Credential(kit.pki.ca_key.read_bytes(), kit.pki.ca_cert.read_bytes())
    kit.store.add_certificate(a.organ_id, _issue(ca, a.organ_id, 5))
    assert await kit.hub.refresh_registry()
    assert kit.metrics.registry.get_sample_value(GAUGE) == 1
