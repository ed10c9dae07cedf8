"""The pure core stays pure: no I/O library is loaded, no clock or environment is read."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PURE_MODULES = ("envelopes.parser", "envelopes.builder", "envelopes.errors", "signing.sign",
                "signing.verify", "signing.pki", "signing.errors", "routing.decide",
                "routing.records", "routing.values", "routing.contract", "routing.ports",
                "routing.errors", "axis.receipts", "axis.registry", "axis.trace",
                "axis.store_values", "axis.errors", "routing.recipients", "signing.revocation",
                "signing.ocsp", "axis.evidence.audit", "routing.attachment_check",
                "routing.contract_attachments", "envelopes.attachment_refs",
                "signing.fixed_sign", "signing.fixed_verify")  # fmt: skip
IO_LIBRARIES = ("aio_pika", "aiormq", "sqlmodel", "sqlalchemy", "prometheus_client", "typer",
                "psycopg", "urllib.request")  # fmt: skip
PURE_FILES = [
    *ROOT.glob("envelopes/*.py"), *ROOT.glob("signing/*.py"),
    *(ROOT / "routing" / f"{name}.py" for name in ("decide", "records", "values", "contract",
                                                    "ports", "errors", "recipients",
                                                    "attachment_check",
                                                    "contract_attachments")),
    ROOT / "axis/receipts.py", ROOT / "axis/registry.py", ROOT / "axis/trace.py",
    ROOT / "axis/errors.py",
]  # fmt: skip
IMPURE_CALL = re.compile(
    r"datetime\.now\(|date\.today\(|time\.time\(|os\.environ|getenv\(|(?<![.\w])open\("
)


def test_pure_modules_load_no_io_library() -> None:
    probe = (f"import sys\nimport {', '.join(PURE_MODULES)}\n"
             f"print(','.join(m for m in {IO_LIBRARIES!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert loaded == ""


def test_pure_files_read_no_clock_environment_or_files() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                 for path in PURE_FILES
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if IMPURE_CALL.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []
