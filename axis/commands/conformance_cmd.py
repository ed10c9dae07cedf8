"""``axis conformance``: the vendor conformance kit (docs/conformance.md)."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from axis.commands.clerk_io import quiet_amqp_logs
from axis.commands.common import EXIT_REFUSED, JsonOption, emit, reporting

app = typer.Typer(
    help="The vendor conformance kit: run a system through the wire contract's rules.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    profile: Annotated[Path, typer.Option(
        "--profile", help="The vendor profile (TOML): system id, certificate, hooks.")],
    workdir: Annotated[Path | None, typer.Option(
        "--workdir", help="Keep the run here (hub home, hook logs). Default: a temporary "
        "folder, removed when every rule passed.")] = None,
    amqp_url: Annotated[str, typer.Option(
        "--amqp-url", envvar="AXIS_AMQP_URL", help="The broker, as an account that may create "
        "vhosts and users.")] = "amqp://guest:guest@127.0.0.1:5672/",
    management_url: Annotated[str, typer.Option(
        "--management-url", envvar="AXIS_MANAGEMENT_URL", help="Its management API."
    )] = "http://guest:guest@127.0.0.1:15672/",
    as_json: bool = JsonOption,
) -> None:  # fmt: skip
    """Run a vendor's system through the documented exchanges against a real, throwaway hub
    and report pass, fail or skip per rule (the list: axis conformance rules).

    The kit starts a hub in a new vhost of the broker, registers the system with the
    profile's certificate and a peer system of its own, then runs the profile's hooks:
    `send` must submit one document to $AXIS_CONFORMANCE_PEER_ORGAN; `receive` must take
    the inbox once (verify, store, ack, answer with status 01) and exit. Everything it
    created on the broker is deleted at the end. Exits 0 when no rule failed, 1 otherwise.

    Example: axis conformance run --profile vendor.toml --workdir run-1
    """
    from axis.conformance.profile import load_vendor_profile
    from axis.conformance.run import run_conformance

    quiet_amqp_logs()
    started = time.monotonic()

    def progress(text: str) -> None:
        typer.echo(f"[{time.monotonic() - started:5.1f}s] {text}", err=True)

    with reporting(as_json):
        vendor = load_vendor_profile(profile)
        folder = workdir or Path(tempfile.mkdtemp(prefix="axis-conformance-"))
        folder.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run_conformance(
            vendor, amqp_url=amqp_url, management_url=management_url, workdir=folder.resolve(),
            progress=progress,
        ))  # fmt: skip
    kept = workdir is not None or not report.ok
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "kept": kept}, ensure_ascii=False, indent=2))
    else:
        for line in _report_lines(report.to_dict()):
            typer.echo(line)
        if kept:
            typer.echo(f"hook logs and the hub home: {folder}")
    if not report.ok:
        raise typer.Exit(EXIT_REFUSED)


def _report_lines(report: dict[str, object]) -> list[str]:
    rules = report["rules"]
    assert isinstance(rules, list)
    width = max(len(rule["id"]) for rule in rules)
    lines = [f"conformance of {report['system_id']}: {report['passed']} passed, "
             f"{report['failed']} failed, {report['skipped']} skipped"]  # fmt: skip
    for rule in rules:
        lines.append(f"  {rule['result'].upper():4}  {rule['id']:{width}}  {rule['title']}")
        if rule["result"] != "pass" or rule["detail"]:
            lines.append(f"  {'':4}  {'':{width}}  {rule['detail']}")
        if rule["result"] == "fail":
            lines.append(f"  {'':4}  {'':{width}}  see docs/{rule['doc']}")
    return lines


@app.command("rules")
def rules(as_json: bool = JsonOption) -> None:
    """List the rules a conformance run judges, with the page of the contract each comes from."""
    from axis.conformance.rules import RULES

    with reporting(as_json):
        width = max(len(rule.id) for rule in RULES)
        listed = [{"id": r.id, "title": r.title, "doc": r.doc, "hook": r.hook} for r in RULES]
        emit(
            as_json,
            {"rules": listed},
            [f"{r.id:{width}}  [{r.hook:7}]  {r.title}  (docs/{r.doc})" for r in RULES],
        )
