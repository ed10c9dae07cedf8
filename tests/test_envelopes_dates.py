"""edXML calendar values: strict layout, real calendar days."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envelopes.dates import parse_date, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2025/05/30", date(2025, 5, 30)), ("2024/02/29", date(2024, 2, 29)),
     ("0001/01/01", date(1, 1, 1))],
)
def test_dates_read(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2025/5/30", "2025-05-30", "2023/02/29", "2025/13/01", "2025/00/10", "2025/05/30 ",
     " 2025/05/30", "2025/05/30 10:00:00", "", "\uff12\uff10\uff12\uff15/05/30", "0000/01/01"],
)
def test_dates_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


@pytest.mark.parametrize(
    "text",
    ["2025/05/30 24:00:00", "2025/05/30 10:60:00", "2025/05/30 10:00:60", "2025/05/30T10:00:00",
     "2025/05/30 1:00:00", "2025/02/30 10:00:00", "2025/05/30"],
)
def test_timestamps_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_timestamps_agree_with_strptime(moment: datetime) -> None:
    text = moment.strftime("%Y/%m/%d %H:%M:%S") if moment.year >= 1000 else (
        f"{moment.year:04d}" + moment.strftime("/%m/%d %H:%M:%S"))
    assert parse_timestamp(text) == moment.replace(microsecond=0)
    assert parse_date(text[:10]) == moment.date()
