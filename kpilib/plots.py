"""Figure factories for the reports: each returns a matplotlib Figure and touches no global state.

Figures are built with `matplotlib.figure.Figure` rather than pyplot, so a notebook shows each
exactly once (as the cell's value, a PNG) and nothing accumulates between reports.
"""

from __future__ import annotations

import io

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from kpilib.metrics import METRICS

_PALETTE = {"met": "#2e7d32", "missed": "#c62828", "revenue": "#90a4ae", "profit": "#1565c0"}


def _money_axis(currency: str) -> FuncFormatter:
    def label(value: float, _pos: int) -> str:
        for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= size:
                return f"{value / size:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(label)


class ReportFigure(Figure):
    """A Figure that shows itself as a described PNG wherever IPython displays it, without pyplot.

    Attributes:
        alt: What the chart shows, for readers who cannot see it (the image's alternative text).
    """

    alt: str = "Chart"

    def _repr_png_(self) -> tuple[bytes, dict[str, str]]:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue(), {"alt": self.alt}


def _literal(labels: pd.Series) -> pd.Series:
    """CRM text as matplotlib shows it literally: a ``$`` would otherwise start mathematics."""
    return labels.astype("str").str.replace("$", r"\$", regex=False)


def _figure(width: float, height: float, alt: str) -> ReportFigure:
    figure = ReportFigure(figsize=(width, height), dpi=100, layout="constrained")
    figure.alt = alt
    return figure


def score_chart(managers: pd.DataFrame) -> Figure:
    """Horizontal bars of the managers' weighted scores against the 100% line.

    Args:
        managers: Columns ``name`` and ``score`` (a share; NaN bars are left out).
    """
    data = managers.dropna(subset=["score"]).sort_values("score", ascending=False)
    data = data.assign(name=_literal(data["name"]))
    figure = _figure(7, 0.45 * max(len(data), 2) + 1, "Weighted KPI score per manager")
    ax = figure.subplots()
    colours = [_PALETTE["met"] if s >= 1 else _PALETTE["missed"] for s in data["score"]]
    sns.barplot(data, x="score", y="name", hue="name", palette=colours, legend=False, ax=ax)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(xlabel="Weighted KPI score (100% = every target met)", ylabel="")
    return figure


def profit_chart(profit: pd.DataFrame, currency: str) -> Figure:
    """Revenue beside net profit per manager: where they diverge, revenue misleads.

    Args:
        profit: Columns ``Manager``, ``Revenue`` and ``Net profit``.
        currency: For the axis label.
    """
    long = (
        profit.assign(Manager=_literal(profit["Manager"]))
        .melt(
            id_vars="Manager",
            value_vars=["Revenue", "Net profit"],
            var_name="Measure",
            value_name="Amount",
        )
        .dropna()
    )
    figure = _figure(7, 0.5 * max(len(profit), 2) + 1.2, "Revenue and net profit per manager")
    ax = figure.subplots()
    sns.barplot(
        long,
        x="Amount",
        y="Manager",
        hue="Measure",
        palette=[_PALETTE["revenue"], _PALETTE["profit"]],
        ax=ax,
    )
    ax.xaxis.set_major_formatter(_money_axis(currency))
    ax.set(xlabel=f"Amount, {currency}", ylabel="")
    ax.legend(title="", loc="lower right")
    return figure


def trend_chart(trend: pd.DataFrame, metrics: tuple[str, ...], currency: str) -> Figure:
    """Small multiples: one line per indicator over the months of the trend window.

    Args:
        trend: Column ``month`` (timestamps) and one column per indicator id.
        metrics: The indicators to draw, in order.
        currency: For money axes.
    """
    labels = ", ".join(METRICS[m].label.lower() for m in metrics)
    figure = _figure(9, 2.2 * ((len(metrics) + 1) // 2) + 0.5, f"Monthly trend of {labels}")
    axes = figure.subplots((len(metrics) + 1) // 2, 2, sharex=True, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        sns.lineplot(trend, x="month", y=metric, marker="o", ax=ax, color=_PALETTE["profit"])
        unit = METRICS[metric].unit
        if unit == "money":
            ax.yaxis.set_major_formatter(_money_axis(currency))
        elif unit == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set(title=METRICS[metric].label, xlabel="", ylabel="")
        ax.tick_params(axis="x", labelrotation=45)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return figure


def share_chart(table: pd.DataFrame, label: str, currency: str) -> Figure:
    """Revenue by a dimension (product, segment, sale type) as horizontal bars.

    Args:
        table: Columns `label` and ``Revenue``.
        label: The dimension column.
        currency: For the axis label.
    """
    table = table.assign(**{label: _literal(table[label])})
    figure = _figure(7, 0.4 * max(len(table), 2) + 1, f"Revenue by {label.lower()}")
    ax = figure.subplots()
    sns.barplot(table, x="Revenue", y=label, color=_PALETTE["profit"], ax=ax)
    ax.xaxis.set_major_formatter(_money_axis(currency))
    ax.set(xlabel=f"Revenue, {currency}", ylabel="")
    return figure
