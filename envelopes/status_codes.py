"""The status codes of a status package (QCVN 102:2016 ``StatusCode``)."""

from __future__ import annotations

from enum import StrEnum


class StatusCode(StrEnum):
    """What happened to a document at one party; the value is the two-digit wire code."""

    ARRIVED = "01"
    REJECTED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    PROCESSING = "05"
    COMPLETED = "06"
    TAKE_BACK_REQUEST = "13"
    CHANGE_ACCEPTED = "15"
    CHANGE_REFUSED = "16"

    @property
    def vi(self) -> str:
        """The Vietnamese name of the status."""
        return _NAMES[self][0]

    @property
    def en(self) -> str:
        """The English name of the status."""
        return _NAMES[self][1]


_NAMES: dict[StatusCode, tuple[str, str]] = {
    StatusCode.ARRIVED: ("Đã đến", "arrived"),
    StatusCode.REJECTED: ("Từ chối tiếp nhận", "rejected"),
    StatusCode.ACCEPTED: ("Đã tiếp nhận", "accepted and registered"),
    StatusCode.ASSIGNED: ("Phân công", "assigned"),
    StatusCode.PROCESSING: ("Đang xử lý", "processing"),
    StatusCode.COMPLETED: ("Hoàn thành", "completed"),
    StatusCode.TAKE_BACK_REQUEST: ("Yêu cầu lấy lại", "take-back request from the original sender"),
    StatusCode.CHANGE_ACCEPTED: ("Đồng ý", "change/take-back accepted"),
    StatusCode.CHANGE_REFUSED: ("Từ chối", "change/take-back refused"),
}
