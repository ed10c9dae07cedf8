"""``axis demo`` (what ``make demo`` runs) works end to end and leaves nothing on the broker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from axis.provision import Management

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_runs_end_to_end_and_deletes_its_vhost(
    amqp_base_url: str, management_base_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--amqp-url", amqp_base_url,
         "--management-url", management_base_url],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified offline (axis audit verify)" in done.stdout
    vhost = re.search(r"vhost '(axis-demo-[0-9a-f]+)'", done.stdout)
    assert vhost is not None, done.stdout
    assert not Management(management_base_url).vhost_exists(vhost.group(1))
    assert done.stdout.rstrip().endswith("nothing left running")
