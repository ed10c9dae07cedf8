"""Operator commands on the organ directory: ``axis directory import`` and ``lookup``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from axis.commands.common import HomeOption, JsonOption, emit, hub_store, reporting
from axis.errors import DirectoryImportError, UnknownOrgan

if TYPE_CHECKING:
    from axis.registry import OrganRow
    from axis.store_directory import OrganEntry

directory_app = typer.Typer(
    help="The organ directory (organ → serving system).", no_args_is_help=True
)
PROGRESS_EVERY = 20000


@directory_app.command("import")
def directory_import(
    file: Path = typer.Argument(
        ..., help="CSV (organ_id,name[,parent_id,qcvn_code,d20_code,replaces]) or JSON Lines."
    ),
    fmt: str = typer.Option(
        "auto", "--format", help="csv, jsonl, or auto: JSON Lines for .jsonl/.ndjson/.json."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Import organs in bulk (upsert by organ id, with their other codes), all or nothing.

    The whole file is checked first; every bad line is reported. Example:
    axis directory import organs.csv --json
    """
    from axis.directory import FORMATS, read_directory

    with reporting(as_json):
        if fmt not in ("auto", *FORMATS):
            raise DirectoryImportError(f"--format must be auto, csv or jsonl, not {fmt!r}")
        if not file.is_file():
            raise DirectoryImportError(f"{file} is not a file", path=str(file))
        rows = read_directory(file, None if fmt == "auto" else fmt)
        with hub_store(home) as store:
            counts = store.import_directory(_progress(rows, as_json))
        data = {"imported": counts.rows, "aliases": counts.aliases,
                "merged": len(counts.merged)}  # fmt: skip
        merged = f", {len(counts.merged)} organ(s) merged" if counts.merged else ""
        emit(as_json, data, [f"imported {counts.rows} organs ({counts.aliases} other codes"
                             f"{merged}) from {file}"])  # fmt: skip


@directory_app.command("lookup")
def directory_lookup(
    code: str = typer.Argument(..., help="Any code of the organ: QCVN 102, QĐ 20/2020 or old."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an organ by any of its codes: both forms, old codes, name, parents up to the
    root, and the system serving it (as the hub routes).

    Example: axis directory lookup G22 --json
    """
    from axis.registry import check_organ_id
    from axis.store_directory import chain_serving

    with reporting(as_json):
        check_organ_id(code)
        with hub_store(home) as store:
            chain = store.organ_chain(code)
            if not chain:
                raise UnknownOrgan(f"no organ of the directory has the code {code!r}",
                                   organ_id=code)  # fmt: skip
            serving = chain_serving(chain)
            system = store.get_system(serving) if serving is not None else None
        info = _organ_json(code, chain, system)
        emit(as_json, info, lambda: _lookup_lines(info))


def _organ_json(code: str, chain: list[OrganEntry], system: Any) -> dict[str, Any]:
    from axis.registry import D20_FORM, QCVN_FORM

    organ = chain[0]
    return {
        "code": code,
        "organ_id": organ.organ_id,
        "name": organ.name,
        "qcvn_code": organ.code(QCVN_FORM),
        "d20_code": organ.code(D20_FORM),
        "old_codes": list(organ.old_codes),
        "parents": [{"organ_id": e.organ_id, "name": e.name} for e in chain[1:]],
        "serving_system": None if system is None else {
            "system_id": system.system_id, "name": system.name, "active": system.active},
    }  # fmt: skip


def _lookup_lines(info: dict[str, Any]) -> list[str]:
    system = info["serving_system"]
    served = "no system serves it" if system is None else (
        f"{system['system_id']} ({system['name']})" + ("" if system["active"] else " SUSPENDED"))
    parents = " > ".join(f"{p['organ_id']} {p['name']}" for p in info["parents"])
    return [
        f"organ      {info['organ_id']}  {info['name']}",
        f"QCVN 102   {info['qcvn_code'] or '-'}",
        f"QĐ 20      {info['d20_code'] or '-'}",
        f"old codes  {', '.join(info['old_codes']) or '-'}",
        f"parents    {parents or '- (a root)'}",
        f"served by  {served}",
    ]  # fmt: skip


def _progress(rows: Iterable[OrganRow], quiet: bool) -> Iterator[OrganRow]:
    for n, row in enumerate(rows, 1):
        if not quiet and n % PROGRESS_EVERY == 0:
            typer.echo(f"  {n} organs read…", err=True)
        yield row


