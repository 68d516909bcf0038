"""One rounding rule for cards and chart: a shown value never crosses a category boundary (DXA-3, POP-3,
QCT-2)."""

from __future__ import annotations

import pytest

from cds_service.cards.numbers import faithful
from cds_service.consensus.bmd import (
    QCT_NORMAL_ABOVE,
    QCT_OSTEOPOROSIS_BELOW,
    T_NORMAL_LOWER_BOUND,
    T_OSTEOPOROSIS_UPPER_BOUND,
    Z_BELOW_EXPECTED,
)
from cds_service.preview.chart import _signed

T = (T_NORMAL_LOWER_BOUND, T_OSTEOPOROSIS_UPPER_BOUND)
QCT = (QCT_OSTEOPOROSIS_BELOW, QCT_NORMAL_ABOVE)


@pytest.mark.parametrize(
    ("value", "boundaries", "shown"),
    [
        pytest.param(-2.5, T, "-2.5", id="DXA-3 T=-2.5 shown as it is"),
        pytest.param(-2.4951, T, "-2.495", id="DXA-3 T=-2.4951 is not shown as -2.5"),
        pytest.param(-2.5049, T, "-2.505", id="DXA-3 T=-2.5049 is not shown as the boundary -2.5"),
        pytest.param(-2.56, T, "-2.6", id="DXA-3 T=-2.56 one decimal, far from the boundary"),
        pytest.param(-0.96, T, "-0.96", id="DXA-3 T=-0.96 is not shown as the boundary -1.0"),
        pytest.param(-1.04, T, "-1.04", id="DXA-3 T=-1.04 is not shown as the boundary -1.0"),
        pytest.param(-1.999, (Z_BELOW_EXPECTED,), "-1.999", id="POP-3 Z=-1.999 is not shown as -2.0"),
        pytest.param(79.96, QCT, "79.96", id="QCT-2 79.96 mg/cm3 is not shown as 80.0"),
        pytest.param(120.04, QCT, "120.04", id="QCT-2 120.04 mg/cm3 is not shown as 120.0"),
        pytest.param(-2.5000000001, T, "-2.5000000001", id="DXA-3 within 1e-6 of -2.5 shown in full"),
        pytest.param(24.96, (), "25.0", id="no boundary: one decimal"),
    ],
)
def test_rounding_never_crosses_a_category_boundary(
    value: float, boundaries: tuple[float, ...], shown: str
) -> None:
    assert faithful(value, 1, boundaries) == shown
    assert _signed(value, 1, boundaries) == shown.replace("-", "−")  # the chart shows the card's number
