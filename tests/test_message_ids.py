"""One rule for consignment ids, at the hub and in ``axis send --message-id``."""

from __future__ import annotations

import pytest

from axis.commands.clerk_io import check_message_id
from routing.decide import valid_message_id
from routing.errors import InvalidMessageId


@pytest.mark.parametrize(
    ("message_id", "valid"),
    [("m1", True), ("x" * 128, True), ("a/b#c", True), ("m1\n", False), ("\nm1", False),
     ("", False), ("m 1", False), ("x" * 129, False), ("mé", False), (None, False)],
)
def test_consignment_ids_are_checked_whole(message_id: str | None, valid: bool) -> None:
    """The hub and ``axis send --message-id`` apply one rule, to the whole id: a trailing
    newline is not printable ASCII either."""
    assert valid_message_id(message_id) is valid
    if message_id is not None and not valid:
        with pytest.raises(InvalidMessageId):
            check_message_id(message_id)
