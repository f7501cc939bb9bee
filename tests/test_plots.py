"""Figure factories: PNG output with alternative text, CRM text shown literally."""

from __future__ import annotations

import pandas as pd

from kpilib import plots

HOSTILE = ["$\\frac{1}$ Ltd", "<script>alert(1)</script>", "Ромашка $5"]


def test_score_chart_draws_hostile_names_literally_as_a_described_png():
    managers = pd.DataFrame({"name": HOSTILE, "score": [1.1, 0.8, None]})
    png, metadata = plots.score_chart(managers)._repr_png_()
    assert png.startswith(b"\x89PNG")
    assert "Weighted KPI score per manager" == metadata["alt"]


def test_profit_and_share_charts_accept_any_crm_text():
    profit = pd.DataFrame(
        {"Manager": HOSTILE, "Revenue": [3e6, 2e6, 1e6], "Net profit": [1e6, 5e5, None]}
    )
    assert plots.profit_chart(profit, "RUB")._repr_png_()[0].startswith(b"\x89PNG")
    products = pd.DataFrame({"Product": HOSTILE, "Revenue": [3e6, 2e6, 1e6]})
    assert plots.share_chart(products, "Product", "RUB")._repr_png_()[0].startswith(b"\x89PNG")


def test_trend_chart_has_one_panel_per_indicator():
    trend = pd.DataFrame(
        {
            "month": pd.date_range("2025-01-01", periods=3, freq="MS"),
            "revenue": [1e6, 2e6, 1.5e6],
            "win_rate": [0.3, 0.4, 0.35],
        }
    )
    figure = plots.trend_chart(trend, ("revenue", "win_rate"), "RUB")
    assert ["Revenue", "Win rate"] == [ax.get_title() for ax in figure.axes if ax.get_visible()]
