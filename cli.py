"""The ``axis`` command: operators run the hub, clerks send and trace, auditors verify."""

from __future__ import annotations

import typer

from axis.commands import (
    audit,
    clerk,
    conformance_cmd,
    dead,
    demo,
    envelope,
    evidence_cmd,
    hub,
    hub_setup,
    inbox_watch,
    pki,
    receipt,
    status_show,
)

app = typer.Typer(
    name="axis",
    help="Axis: the inter-agency exchange of signed edXML documents, with proof.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Operators
app.command("demo")(demo.demo)
app.command("init")(hub.init)
app.command("serve")(hub.serve)
app.add_typer(hub.agency_app, name="agency")
app.add_typer(hub.directory_app, name="directory")
app.add_typer(pki.app, name="pki")
app.add_typer(dead.app, name="dead")
app.add_typer(hub_setup.app, name="hub")
# Clerks
app.add_typer(clerk.profile_app, name="profile")
app.command("send")(clerk.send)
app.add_typer(clerk.inbox_app, name="inbox")
clerk.inbox_app.command("watch")(inbox_watch.inbox_watch)
app.add_typer(status_show.status_app, name="status")
app.command("trace")(clerk.trace)
# Packages and auditors
app.add_typer(envelope.app, name="envelope")
app.add_typer(receipt.app, name="receipt")
app.add_typer(evidence_cmd.evidence_app, name="evidence")
app.add_typer(evidence_cmd.log_app, name="log")
app.add_typer(audit.app, name="audit")
# Vendors
app.add_typer(conformance_cmd.app, name="conformance")


if __name__ == "__main__":
    app(prog_name="axis")
