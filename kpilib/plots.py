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

PALETTE = {"met": "#2e7d32", "missed": "#c62828", "revenue": "#90a4ae", "profit": "#1565c0"}


def money_axis(currency: str) -> FuncFormatter:
    """Axis labels for money: 1.5M, 250K (the currency goes in the axis title)."""

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


def literal(labels: pd.Series) -> pd.Series:
    """CRM text as matplotlib shows it literally: a ``$`` would otherwise start mathematics."""
    return labels.astype("str").str.replace("$", r"\$", regex=False)


def new_figure(width: float, height: float, alt: str) -> ReportFigure:
    """An empty report figure of this size (inches) with its alternative text."""
    figure = ReportFigure(figsize=(width, height), dpi=100, layout="constrained")
    figure.alt = alt
    return figure


def score_chart(managers: pd.DataFrame) -> Figure:
    """Horizontal bars of the managers' weighted scores against the 100% line.

    Args:
        managers: Columns ``name`` and ``score`` (a share; NaN bars are left out).
    """
    data = managers.dropna(subset=["score"]).sort_values("score", ascending=False)
    data = data.assign(name=literal(data["name"]))
    figure = new_figure(7, 0.45 * max(len(data), 2) + 1, "Weighted KPI score per manager")
    ax = figure.subplots()
    colours = [PALETTE["met"] if s >= 1 else PALETTE["missed"] for s in data["score"]]
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
        profit.assign(Manager=literal(profit["Manager"]))
        .melt(
            id_vars="Manager",
            value_vars=["Revenue", "Net profit"],
            var_name="Measure",
            value_name="Amount",
        )
        .dropna()
    )
    figure = new_figure(7, 0.5 * max(len(profit), 2) + 1.2, "Revenue and net profit per manager")
    ax = figure.subplots()
    sns.barplot(
        long,
        x="Amount",
        y="Manager",
        hue="Measure",
        palette=[PALETTE["revenue"], PALETTE["profit"]],
        ax=ax,
    )
    ax.xaxis.set_major_formatter(money_axis(currency))
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
    figure = new_figure(9, 2.2 * ((len(metrics) + 1) // 2) + 0.5, f"Monthly trend of {labels}")
    axes = figure.subplots((len(metrics) + 1) // 2, 2, sharex=True, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        sns.lineplot(trend, x="month", y=metric, marker="o", ax=ax, color=PALETTE["profit"])
        unit = METRICS[metric].unit
        if unit == "money":
            ax.yaxis.set_major_formatter(money_axis(currency))
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
    table = table.assign(**{label: literal(table[label])})
    figure = new_figure(7, 0.4 * max(len(table), 2) + 1, f"Revenue by {label.lower()}")
    ax = figure.subplots()
    sns.barplot(table, x="Revenue", y=label, color=PALETTE["profit"], ax=ax)
    ax.xaxis.set_major_formatter(money_axis(currency))
    ax.set(xlabel=f"Revenue, {currency}", ylabel="")
    return figure


def waterfall_chart(
    table: pd.DataFrame,
    start_label: str,
    end_label: str,
    currency: str,
    title: str,
    *,
    start: float,
) -> Figure:
    """A gap's bridge from a reference to the actual value, one floating bar per contribution.

    The reference bar, then each contribution from where the previous one ended (green up, red
    down, each labelled with its signed value such as ``+1.2M`` or ``−0.8M`` so that colour is not
    the only cue), then the end bar at the reference plus every contribution. An unknown
    contribution is labelled "no data" without a bar, and the end is then unknown too.

    Args:
        table: Columns ``label`` and ``contribution``, in the order to draw (for example a
            `kpilib.decomposition.driver_gap` or `top_segments` table).
        start_label: The reference bar's label ("Plan", "Baseline", a peer's name).
        end_label: The end bar's label ("Actual").
        currency: For the axis.
        title: The chart's title.
        start: The reference value the contributions start from.
    """
    steps = table["contribution"].astype(float).reset_index(drop=True)
    known = steps.notna().all() and not pd.isna(start)
    end = start + steps.sum() if known else float("nan")
    bottoms = start + steps.fillna(0.0).cumsum().shift(fill_value=0.0)
    alt = _waterfall_alt(table, start, end, start_label, end_label, currency, title)
    start_label, end_label, title = literal(pd.Series([start_label, end_label, title]))
    labels = [start_label, *literal(table["label"]), end_label]
    figure = new_figure(max(6.0, 0.8 * len(labels) + 1.5), 4.8, alt)
    ax = figure.subplots()
    totals = [(0, start, PALETTE["revenue"]), (len(labels) - 1, end, PALETTE["profit"])]
    for position, value, colour in totals:
        if pd.isna(value):
            ax.annotate("no data", (position, 0), ha="center", va="bottom")
            continue
        bars = ax.bar(position, value, color=colour, width=0.6)
        ax.bar_label(bars, labels=[_short(value)], padding=2)
        if position:
            ax.plot([position - 0.7, position - 0.3], [value, value], color="grey", linewidth=0.8)
    for position, (bottom, step) in enumerate(zip(bottoms, steps, strict=True), start=1):
        if pd.isna(step):
            ax.annotate("no data", (position, bottom), ha="center", va="bottom")
            continue
        colour = PALETTE["met"] if step >= 0 else PALETTE["missed"]
        bars = ax.bar(position, step, bottom=bottom, color=colour, width=0.6)
        bars[0].sticky_edges.y.clear()  # a floating bar's base must not stop the axis margin
        ax.bar_label(bars, labels=[_short(step, signed=True)], padding=2)
        ax.plot([position - 0.7, position - 0.3], [bottom, bottom], color="grey", linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(money_axis(currency))
    ax.margins(y=0.12)
    ax.set(title=title, xlabel="", ylabel=f"Amount, {currency}")
    return figure


def _short(value: float, signed: bool = False) -> str:
    """``1.2M``, or with its sign (``+1.2M``, ``−0.8M``) for a contribution."""
    sign = "\u2212" if value < 0 else "+" if signed and value > 0 else ""
    size = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= scale:
            return f"{sign}{size / scale:,.1f}{suffix}"
    return f"{sign}{size:,.0f}"


def _waterfall_alt(
    table: pd.DataFrame,
    start: float,
    end: float,
    start_label: str,
    end_label: str,
    currency: str,
    title: str,
) -> str:
    def amount(value: float, signed: bool = False) -> str:
        return "no data" if pd.isna(value) else f"{_short(value, signed)} {currency}"

    text = f"{title}: from {start_label} {amount(start)} to {end_label} {amount(end)}"
    steps = table["contribution"].astype(float).reset_index(drop=True)
    if steps.notna().any():
        largest = steps.abs().idxmax()
        label = table["label"].iloc[largest]
        text += f"; largest contribution: {label} {amount(steps[largest], signed=True)}"
    return text + "."


def forecast_chart(
    history: pd.Series, table: pd.DataFrame, currency: str, level: float = 0.8
) -> Figure:
    """Monthly revenue of the last 18 months, then the forecast with its interval band.

    Args:
        history: Monthly revenue on a monthly ``PeriodIndex`` (NaN months are left as gaps).
        table: One row per future month: ``month`` (Period), ``forecast``, ``lower``, ``upper``,
            and optionally ``naive`` (seasonal naive) and ``plan``; NaN values are not drawn.
        currency: For the axis label.
        level: Coverage of the interval, for the legend.
    """
    actual = history.iloc[-18:].astype(float)
    future = pd.PeriodIndex(table["month"], freq="M")
    alt = (
        f"Monthly revenue from {actual.index[0]:%B %Y} to {actual.index[-1]:%B %Y}"
        if len(actual)
        else "No monthly revenue"
    )
    if len(future):
        span = f"{future[0]:%B %Y} to {future[-1]:%B %Y}"
        shown = [f"its {level:.0%} interval"]
        shown += ["the same month last year"] if "naive" in table else []
        shown += ["the plan"] if "plan" in table and table["plan"].notna().any() else []
        listed = f"{', '.join(shown[:-1])} and {shown[-1]}" if len(shown) > 1 else shown[0]
        if table["forecast"].notna().any():
            alt += f", the forecast for {span} with {listed}"
        else:
            alt += f"; no forecast for {span} (too little history)"
    figure = new_figure(9, 4.5, alt)
    ax = figure.subplots()
    ax.plot(
        actual.index.to_timestamp(),
        actual.to_numpy(),
        marker="o",
        color=PALETTE["profit"],
        label="Actual revenue",
    )
    x = future.to_timestamp()
    forecast = table["forecast"].astype(float).to_numpy()
    if len(actual) and len(future):  # the forecast line starts at the last actual month
        ax.plot(
            [actual.index[-1].to_timestamp(), x[0]],
            [actual.iloc[-1], forecast[0]],
            color="#ef6c00",
            linestyle=":",
        )
    ax.plot(x, forecast, marker="o", color="#ef6c00", label="Forecast")
    ax.fill_between(
        x,
        table["lower"].astype(float).to_numpy(),
        table["upper"].astype(float).to_numpy(),
        color="#ef6c00",
        alpha=0.2,
        linewidth=0,
        label=f"{level:.0%} interval",
    )
    if "naive" in table:
        ax.plot(
            x,
            table["naive"].astype(float).to_numpy(),
            linestyle="--",
            marker="s",
            color="#757575",
            label="Same month last year (seasonal naive)",
        )
    if "plan" in table and table["plan"].notna().any():
        ax.plot(
            x,
            table["plan"].astype(float).to_numpy(),
            linestyle="none",
            marker="D",
            markersize=8,
            color=PALETTE["met"],
            label="Plan",
        )
    ax.yaxis.set_major_formatter(money_axis(currency))
    ax.set_ylim(bottom=0)
    ax.set(title="Monthly revenue: actual and forecast", xlabel="", ylabel=f"Revenue, {currency}")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(loc="upper left", fontsize="small")
    return figure
