"""How a measured value is shown: rounding never moves it across a category boundary (cards and chart)."""

from __future__ import annotations

from collections.abc import Iterable


def faithful(value: float, decimals: int, boundaries: Iterable[float] = ()) -> str:
    """The value with `decimals` places, or as few more as keep it on the same side of every boundary
    (so a -2.4951 is never shown as the osteoporosis value -2.5 of DXA-3); its full repr if none do."""
    limits = tuple(boundaries)
    for places in range(decimals, 7):
        shown = round(value, places)
        if all((shown <= b) == (value <= b) and (shown < b) == (value < b) for b in limits):
            return f"{shown:.{places}f}"
    return repr(value)
