"""The hub publishes contract messages straight to aiormq: the frame's properties must be
exactly what an aio-pika message of the same contract message carries."""

from __future__ import annotations

import pytest

from routing.amqp import amqp_message, amqp_properties
from routing.contract import WireMessage, answer_message, delivery_message, receipt_message


@pytest.mark.parametrize("wire", [
    delivery_message(body=b"<x/>", kind="edoc", sender_system="S", sender_organ="O",
                     recipient_organs=("R1", "R2"), document_id="D", consignment="C",
                     status_code=None),
    delivery_message(body=b"<x/>", kind="status", sender_system="S", sender_organ="O",
                     recipient_organs=("R1",), document_id="D", consignment="C",
                     status_code="03"),
    receipt_message(receipt_xml=b"<r/>", receipt_id="S/C", consignment="C", event="rejected",
                    error_code="envelope.malformed_xml", log_index=7),
    answer_message({"ok": True}, correlation_id="c-1"),
    WireMessage(body=b"", content_type="application/json", user_id="S", reply_to="r",
                type="attachment.state", persistent=False),
], ids=["delivery", "status", "receipt", "answer", "request"])  # fmt: skip
def test_properties_are_those_of_the_aio_pika_message(wire: WireMessage) -> None:
    # The encoded property frame: the bytes the broker gets.
    assert amqp_properties(wire).marshal() == amqp_message(wire).properties.marshal()
