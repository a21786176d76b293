"""Dates as the publications print them."""

from __future__ import annotations

import datetime

_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip


def display_date(day: datetime.date) -> str:
    """``March 1, 2026``: spelled out so no locale setting can change the output."""
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}"
