"""What every ``axis`` command shares: output in words or ``--json``, and error exits.

Every failure is an :class:`AxisError`; a command prints its code and reason
(or, with ``--json``, ``{"ok": false, "error": {"code", "reason", ...}}``) and
exits non-zero. Exit codes: 1 for a refusal of the input (validation, signature,
receipt), 2 for usage (typer's own), 3 for configuration, 4 for the broker, the
database or the network, 5 for anything unexpected.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from cryptography import x509
from typer.exceptions import TyperException

from axis.errors import ConfigError, StoreUnavailable
from axis.files import write_atomic
from envelopes.errors import AxisError, InvalidMetadata
from routing.errors import TransportError
from signing.keys import load_certificate, load_certificates
from signing.verify import VerifyPolicy

if TYPE_CHECKING:
    from axis.settings import Settings
    from axis.store import Store

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of text.")

EXIT_REFUSED = 1
EXIT_CONFIG = 3
EXIT_TRANSPORT = 4
EXIT_INTERNAL = 5


def exit_code_for(error: AxisError) -> int:
    """The process exit code for an error's family."""
    if isinstance(error, ConfigError):
        return EXIT_CONFIG
    if isinstance(error, TransportError | StoreUnavailable):
        return EXIT_TRANSPORT
    return EXIT_REFUSED


def emit(as_json: bool, data: dict[str, Any], lines: Callable[[], list[str]] | list[str]) -> None:
    """Print ``data`` as JSON, or the human ``lines``."""
    if as_json:
        typer.echo(json.dumps({"ok": True, **data}, ensure_ascii=False, indent=2, default=str))
        return
    for line in lines() if callable(lines) else lines:
        typer.echo(line)


def fail(as_json: bool, error: AxisError) -> NoReturn:
    """Report ``error`` (stderr in text mode, stdout JSON with ``--json``) and exit."""
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": error.to_dict()}, ensure_ascii=False,
                              indent=2, default=str))
    else:
        typer.echo(f"error: {error.code}: {error.reason}" + (f" (at {error.path})" if error.path
                                                                else ""), err=True)
    raise typer.Exit(exit_code_for(error))


@contextmanager
def reporting(as_json: bool) -> Iterator[None]:
    """Turn any AxisError raised inside into a reported, coded exit."""
    try:
        yield
    except AxisError as error:
        fail(as_json, error)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, TyperException):  # usage errors keep typer's exit 2
        raise
    except Exception as exc:  # a defect: still a coded, one-line answer, not a traceback
        defect = AxisError(f"internal error: {type(exc).__name__}: {exc}")
        if as_json:
            typer.echo(json.dumps({"ok": False, "error": defect.to_dict()}, ensure_ascii=False))
        else:
            typer.echo(f"error: {defect.code}: {defect.reason}", err=True)
        raise typer.Exit(EXIT_INTERNAL) from exc


def read_file(path: Path, what: str) -> bytes:
    """A file's bytes, or a coded error that names it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidMetadata(f"{what} {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidMetadata(f"{what} {str(path)!r} is a directory") from None
    except OSError as exc:
        raise InvalidMetadata(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` atomically (temp file then rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)


def stderr(message: str) -> None:
    print(message, file=sys.stderr)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (commands pass it into the pure core)."""
    return datetime.now(UTC)


def load_certificate_file(path: Path, what: str) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM bundle (or one DER certificate) in ``path``."""
    data = read_file(path, what)
    if b"-----BEGIN" in data:
        return tuple(load_certificates(data))
    return (load_certificate(data),)


def trust_policy(
    pinned: Path | None,
    trust: Path | None,
    *,
    allow_sha1: bool = False,
    pinned_flag: str = "--cert",
) -> tuple[VerifyPolicy, str]:
    """The verification policy for exactly one of a pinned certificate or a CA file, at now.

    Returns the policy and a phrase saying what the signer is checked against.
    Giving both or neither is a usage error (exit 2).
    """
    if (pinned is None) == (trust is None):
        raise typer.BadParameter(f"give exactly one of {pinned_flag} or --trust")
    if pinned is not None:
        certificates = load_certificate_file(pinned, "certificate")
        policy = VerifyPolicy(at=utc_now(), pinned=certificates, allow_sha1=allow_sha1)
        return policy, f"the signer is the pinned certificate {str(pinned)!r}"
    assert trust is not None
    anchors = load_certificate_file(trust, "trust anchor file")
    policy = VerifyPolicy(at=utc_now(), trust_anchors=anchors, allow_sha1=allow_sha1)
    return policy, f"the signer's certificate chains to a trust anchor in {str(trust)!r}"


HomeOption = typer.Option(
    None, "--home", envvar="AXIS_HOME", help="Hub home (default: $AXIS_HOME, else ./.axis)."
)


@contextmanager
def open_store(settings: Settings) -> Iterator[Store]:
    """The hub's store (its tables created when missing), disposed afterwards; one that
    cannot be reached or opened is ``store.unavailable`` (the store says so itself for a
    database server; here for a SQLite file too)."""
    from sqlalchemy.exc import OperationalError

    from axis.store import Store

    store = Store(settings.db_url)
    try:
        store.create_all()
        yield store
    except OperationalError as exc:
        reason = str(exc.orig or exc).splitlines()[0]
        raise StoreUnavailable(
            f"cannot use the hub's database {shown_db_url(settings.db_url)}: {reason}"
        ) from None
    finally:
        store.dispose()


@contextmanager
def hub_store(home: Path | None) -> Iterator[Store]:
    """:func:`open_store` for the hub home ``home`` (default: the configured one)."""
    from axis.settings import load_settings

    with open_store(load_settings(home)) as store:
        yield store


def shown_db_url(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: show its scheme only
        return url.split(":", 1)[0] + ":…"
