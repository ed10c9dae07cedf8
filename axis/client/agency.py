"""The agency-side SDK: send signed packages, take the inbox, answer with statuses.

``AgencyClient`` connects to the hub's RabbitMQ with the system's own account,
publishes with ``user_id`` = the system id and publisher confirms, verifies what
arrives (senders' signatures against the trust anchors, receipts against the
hub's certificate) and acks only after the application says it has stored the
item. Each stored document is answered with status 01 (arrived) automatically.
Files above the inline limit travel as streamed attachments: :meth:`AgencyClient.attach_files`
uploads them, and a delivered document's files are downloaded before it is handed over
(``axis/client/upload.py``, ``axis/client/download.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from cryptography import x509

from axis.client.config import ClientConfig
from axis.client.download import DownloadProgress, default_download_dir, fetch_item_files
from axis.client.push import watch_queue
from axis.client.queries import HubQueries
from axis.client.upload import DEFAULT_WINDOW, FileUpload, NamedProgress, attach_files
from axis.errors import (
    AuthenticationFailed,
    BrokerUnreachable,
    HubNotReady,
    SenderMismatch,
)
from axis.receipts import VerifiedReceipt
from envelopes.builder import build_package, status_package
from envelopes.errors import AxisError
from envelopes.model import Attachment, DocumentPackage, Organization, Package, StaffInfo
from envelopes.parser import read_package
from envelopes.status_codes import StatusCode
from routing.amqp import broker_urls, connect_robust_any, publish_confirmed
from routing.contract import (
    EDOC_KEY,
    STATUS_KEY,
    SUBMIT_EXCHANGE,
    TYPE_RECEIPT,
    inbox_queue_name,
    read_delivery_headers,
    submission_message,
)
from routing.errors import AccessRefused, SubmissionTooLarge
from signing.keys import organ_id_of
from signing.sign import sign_package
from signing.verify import VerifyPolicy, verify

RESTORE_SECONDS = 10.0  # how long a publish waits for its channel after a reconnection


@dataclass(slots=True)
class InboxItem:
    """One message from the inbox, verified. Call :meth:`ack` once it is stored."""

    kind: str
    body: bytes
    message_id: str
    headers: dict[str, Any]
    package: Package | None = None
    receipt: VerifiedReceipt | None = None
    signer: x509.Certificate | None = None
    error: AxisError | None = None
    files: dict[str, Path] = field(default_factory=dict)  # streamed files, by SHA-256
    _message: AbstractIncomingMessage | None = field(default=None, repr=False)
    _on_ack: Callable[[InboxItem], Any] | None = field(default=None, repr=False)

    @property
    def sender_system(self) -> str:
        return read_delivery_headers(self.headers).sender_system

    @property
    def recipient_organs(self) -> tuple[str, ...]:
        return read_delivery_headers(self.headers).recipient_organs

    async def ack(self) -> bool:
        """Settle the message: the application has stored it (sends status 01 for documents).

        False when the connection was lost since the item was handed over: nothing was
        settled and the broker delivers the message again (store it again, idempotently).
        """
        if self._message is not None:
            try:
                await self._message.ack()
            except aiormq.exceptions.ChannelInvalidStateError:
                return False
        if self._on_ack is not None:
            await self._on_ack(self)
        return True


class AgencyClient(HubQueries):
    """An agency system's connection to the hub."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        auto_arrived: bool = True,
        clock: Callable[[], datetime] | None = None,
        sent_consignments: set[str] | None = None,
        download_dir: Path | None = None,
        download_progress: DownloadProgress | None = None,
    ) -> None:
        """``sent_consignments``: the ids of every consignment this system sent (kept by the
        application across runs); given, a receipt about any other id is refused with
        ``receipt.not_ours``. :meth:`send` adds to it. ``download_dir``: where streamed
        files are downloaded (keep it across runs: an interrupted download resumes there;
        default: :func:`~axis.client.download.default_download_dir`, private to the user).
        ``download_progress(ref, bytes_done, bytes_total)`` reports each download."""
        self.config = config
        self.download_dir = download_dir or default_download_dir(config.system_id)
        self.download_progress = download_progress
        self.auto_arrived = auto_arrived
        self.sent_consignments = sent_consignments
        self._clock = clock or (lambda: datetime.now(UTC))
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._seen: set[str] = set()

    async def __aenter__(self) -> AgencyClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the connection and a confirming channel; broker errors become coded errors."""
        try:
            self._connection = await asyncio.wait_for(
                connect_robust_any(
                    broker_urls(self.config.amqp_url, self.config.failover),
                    reconnect_interval=1, fail_fast="true",
                ),
                timeout,
            )
        except aiormq.exceptions.InvalidFrameError:
            # The broker closes the handshake when the account may not use the vhost.
            raise AccessRefused(
                f"system {self.config.system_id} may not use the broker's virtual host"
            ) from None
        except aiormq.exceptions.ProbableAuthenticationError as exc:
            raise AuthenticationFailed(
                f"the broker refused the credentials of {self.config.system_id}: {exc}"
            ) from None
        except (TimeoutError, OSError, aiormq.exceptions.AMQPConnectionError) as exc:
            if "ACCESS_REFUSED" in str(exc) or "authentication" in str(exc).lower():
                raise AuthenticationFailed(
                    f"the broker refused the credentials of {self.config.system_id}"
                ) from None
            raise BrokerUnreachable(
                f"cannot reach the broker: {exc or type(exc).__name__}"
            ) from None
        self._channel = await self._connection.channel(publisher_confirms=True)

    async def _reopen_channel(self) -> None:
        if self._connection is not None and (self._channel is None or self._channel.is_closed):
            self._channel = await self._connection.channel(publisher_confirms=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    @property
    def connection(self) -> AbstractRobustConnection:
        """The broker connection (``transport.unreachable`` when not connected)."""
        if self._connection is None:
            raise BrokerUnreachable("the client is not connected")
        return self._connection

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise BrokerUnreachable("the client is not connected")
        return self._channel

    # -- sending -------------------------------------------------------------------

    def sign(self, package: Package | bytes) -> bytes:
        """Canonical edXML bytes of ``package``, signed with the system's key."""
        raw = package if isinstance(package, bytes) else build_package(package)
        return sign_package(raw, self.config.signing_key)

    async def send(
        self, signed: bytes, *, kind: str = EDOC_KEY, message_id: str | None = None
    ) -> str:
        """Submit signed bytes; waits for the broker's confirm; returns the consignment id."""
        message_id = message_id or str(uuid.uuid4())
        channel = await self._restored(self.channel)
        exchange = await channel.get_exchange(SUBMIT_EXCHANGE, ensure=False)
        message = submission_message(
            signed, message_id=message_id, system_id=self.config.system_id
        )
        try:
            await publish_confirmed(exchange, message, kind)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise HubNotReady("the broker has no axis.submit exchange: no hub was set up") from None
        except SubmissionTooLarge:
            await self._reopen_channel()  # the broker closes the channel of a refused publish
            raise
        if self.sent_consignments is not None:
            self.sent_consignments.add(message_id)
        return message_id

    async def attach_files(self, paths: Sequence[Path], *, inline_max: int | None = None,
                           progress: NamedProgress | None = None,
                           hashing: NamedProgress | None = None, window: int = DEFAULT_WINDOW,
                           uploads: list[FileUpload] | None = None,
                           ) -> list[Attachment]:  # fmt: skip
        """Attachments for a document: files up to ``inline_max`` (default: the config's
        ``inline_attachment_max``) inline, larger ones uploaded and referenced. Every file
        is checked first (readable, at most ``max_attachment_bytes``). Build the document
        with them, then :meth:`sign` and :meth:`send` it as usual. ``uploads`` collects the
        :class:`~axis.client.upload.FileUpload` of each streamed file."""
        return await attach_files(self, paths, inline_max=inline_max, progress=progress,
                                  hashing=hashing, window=window, uploads=uploads)  # fmt: skip

    async def _restored(self, channel: AbstractChannel) -> AbstractChannel:
        """``channel`` once restored after a lost connection: a consumer's channel may be
        back (and its deliveries acked, owing a status 01) before this one is. Waits at most
        ``RESTORE_SECONDS``; a publish on a channel still down fails with a coded error."""
        if isinstance(channel, AbstractRobustChannel) and self._connection is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(channel.ready(), RESTORE_SECONDS)
        return channel

    async def send_status(
        self,
        document: DocumentPackage,
        code: StatusCode,
        description: str,
        *,
        organ: Organization | None = None,
        staff: StaffInfo | None = None,
        message_id: str | None = None,
    ) -> str:
        """Build, sign and submit a status package about ``document``."""
        sender = organ or self.config.organ or Organization(self.config.system_id)
        status = status_package(sender, document, code, description, self._clock(), staff)
        return await self.send(self.sign(status), kind=STATUS_KEY, message_id=message_id)

    # -- inbox -----------------------------------------------------------------------

    async def fetch(self, *, max_items: int | None = None) -> AsyncIterator[InboxItem]:
        """Everything waiting in the inbox now, verified, one at a time; ends when empty."""
        queue = await self.channel.get_queue(inbox_queue_name(self.config.system_id), ensure=False)
        taken = 0
        while max_items is None or taken < max_items:
            try:
                message = await queue.get(no_ack=False, fail=False)
            except aiormq.exceptions.ChannelAccessRefused as exc:
                raise AccessRefused(f"cannot read the inbox: {exc}") from None
            except aiormq.exceptions.ChannelNotFoundEntity:
                raise HubNotReady("this system has no inbox on the broker") from None
            if message is None:
                return
            taken += 1
            item = await self._unseen_item(message)
            if item is not None:
                yield item

    def watch(self, *, prefetch: int = 16) -> AsyncGenerator[InboxItem, None]:
        """Every delivery to the inbox as it arrives (``basic.consume``), verified, de-duplicated
        and settled exactly as :meth:`fetch` does, until the iteration stops.

        At most ``prefetch`` messages are handed over un-acked at a time; ack each item
        (after the durable write) before taking the next. Stopping (``break`` inside
        ``contextlib.aclosing``, ``aclose()``, task cancellation) cancels the consumer;
        whatever was not acked stays with the broker and is delivered again. The
        subscription is restored after the connection to the broker is.
        """
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if self._connection is None:
            raise BrokerUnreachable("the client is not connected")
        queue = inbox_queue_name(self.config.system_id)
        return watch_queue(self._connection, queue, self._unseen_item, prefetch=prefetch)

    async def _unseen_item(self, message: AbstractIncomingMessage) -> InboxItem | None:
        """``message`` verified (with the files it references downloaded), or None once
        acked when it is a copy already stored."""
        if (message.message_id or "") in self._seen:
            await message.ack()  # a copy the hub published twice: already stored
            return None
        item = self._item(message)
        await fetch_item_files(self, item, self.download_dir, progress=self.download_progress)
        return item

    def _item(self, message: AbstractIncomingMessage) -> InboxItem:
        item = InboxItem(
            kind=message.type or "",
            body=bytes(message.body),
            message_id=message.message_id or "",
            headers=dict(message.headers or {}),
            _message=message,
            _on_ack=self._after_ack,
        )
        try:
            if item.kind == TYPE_RECEIPT:
                item.receipt = self._own_receipt(self.verify_receipt(item.body))
            else:
                verified = verify(
                    item.body,
                    VerifyPolicy(at=self._clock(), trust_anchors=self.config.trust_anchors),
                )
                package = read_package(verified.root)
                _check_sender(item.headers, verified.signer, package)
                item.signer = verified.signer
                item.package = package
        except AxisError as error:
            item.error = error
        return item

    async def _after_ack(self, item: InboxItem) -> None:
        self._seen.add(item.message_id)
        if self.auto_arrived and isinstance(item.package, DocumentPackage) and item.error is None:
            organs = item.recipient_organs or (self.config.system_id,)
            for organ_id in organs:
                organ = (
                    self.config.organ
                    if self.config.organ and self.config.organ.organ_id == organ_id
                    else Organization(organ_id)
                )
                await self.send_status(
                    item.package,
                    StatusCode.ARRIVED,
                    "Đã đến / arrived",
                    organ=organ,
                )

    def remember(self, message_ids: set[str]) -> None:
        """Message ids the application has already stored (de-duplication across runs)."""
        self._seen |= message_ids


def _check_sender(headers: dict[str, Any], signer: x509.Certificate, package: Package) -> None:
    """Raise ``signature.sender_mismatch`` unless the package comes from whom the hub says.

    Every agency certificate chains to the same CA, so the CA check alone would accept
    agency C's signature on a package whose ``From/OrganId`` names A. The signing
    certificate's organ (subject UID) must be the ``axis-sender-system`` the broker
    authenticated, and the verified ``From/OrganId`` must be the ``axis-sender-organ``.
    """
    delivery = read_delivery_headers(headers)
    signer_organ = organ_id_of(signer)
    from_organ = package.sender.organ_id
    detail = {
        "signer_organ": signer_organ or "",
        "sender_system": delivery.sender_system,
        "sender_organ": delivery.sender_organ,
        "from_organ": from_organ,
    }
    if not signer_organ:
        raise SenderMismatch("the signing certificate names no organ (no subject UID)", **detail)
    if signer_organ != delivery.sender_system:
        raise SenderMismatch(
            f"signed by the certificate of {signer_organ}, but the hub received it from "
            f"system {delivery.sender_system or '(none)'}",
            **detail,
        )
    if from_organ != delivery.sender_organ:
        raise SenderMismatch(
            f"From/OrganId is {from_organ}, but the hub routed it as sent by organ "
            f"{delivery.sender_organ or '(none)'}",
            **detail,
        )
    # Signer organ and From/OrganId may still differ: a system signing for a sub-unit it
    # serves. Only the hub knows who serves what; it checked that at submission, and
    # with the signer pinned to the routing system nobody else can claim the sub-unit.


__all__ = ["AgencyClient", "ClientConfig", "InboxItem"]
