"""What one hub process is configured with."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class HubConfig:
    """What one hub process needs to run.

    ``hub_user`` is the hub's own broker user (default: the user of ``amqp_url``): only
    messages whose RabbitMQ-checked ``user_id`` is this user may speak for another
    system (retries and replays). ``max_attempts`` bounds the retries of a submission
    that keeps failing; ``rate_per_second`` and ``rate_burst`` are each system's
    admission rate in this process (0: no limit). ``log_head_seconds`` is how often the
    hub signs a tree head over its evidence log when the log grew;
    ``revocation_refresh_seconds`` how often it fetches the CRLs and OCSP responses that
    are due (when it checks revocation).
    """

    amqp_url: str
    amqp_failover: tuple[str, ...] = ()  # other nodes of the cluster, "host:port"
    prefetch: int = 64
    max_submission_bytes: int = 16 * 1024 * 1024
    queue_type: str = "quorum"
    registry_refresh_seconds: float = 5.0
    hub_user: str = ""
    max_attempts: int = 8
    rate_per_second: float = 0.0
    rate_burst: int = 200
    log_head_seconds: float = 10.0
    revocation_refresh_seconds: float = 300.0

    @property
    def broker_user(self) -> str:
        return self.hub_user or unquote(urlsplit(self.amqp_url).username or "")
