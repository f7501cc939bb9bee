"""Figure factories for the reports: each returns a matplotlib Figure and touches no global state.

Figures are built with `matplotlib.figure.Figure` rather than pyplot, so a notebook shows each
exactly once (as the cell's value, a PNG) and nothing accumulates between reports.
"""

from __future__ import annotations

import io
import textwrap
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, PercentFormatter

from kpilib.metrics import METRICS

PALETTE = {"met": "#2e7d32", "missed": "#c62828", "revenue": "#90a4ae", "profit": "#1565c0"}

LABEL_LIMIT = 32
"""The most characters a CRM name takes on a chart (tick label, legend entry, annotation)."""

ELLIPSIS = "\u2026"
"""Ends a shortened label."""

TITLE_CHARACTERS_PER_INCH = 8
"""How many characters of a title a line holds per inch of figure width, wide letters included."""


def money_axis(currency: str) -> FuncFormatter:
    """Axis labels for money: 1.5M, 250K (the currency goes in the axis title)."""

    def label(value: float, _pos: int) -> str:
        for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if abs(value) >= size:
                return f"{value / size:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(label)


PNG_COMPRESS_LEVEL = 3
"""How hard a chart's PNG is compressed (zlib's 0 to 9)."""


class ReportFigure(Figure):
    """A Figure that shows itself as a described PNG wherever IPython displays it, without pyplot.

    Attributes:
        alt: What the chart shows, for readers who cannot see it (the image's alternative text).
    """

    alt: str = "Chart"

    def _repr_png_(self) -> tuple[bytes, dict[str, str]]:
        buffer = io.BytesIO()
        # zlib's level 3 rather than PIL's default 6: a demo chart encodes in 12 ms instead of
        # 20 ms and is 3% larger.
        self.savefig(
            buffer,
            format="png",
            metadata={"Software": None},
            pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL},
        )
        return buffer.getvalue(), {"alt": self.alt}


def show_with_alt() -> None:
    """Have the running IPython (if any) show report figures through `ReportFigure._repr_png_`.

    A shell with inline charts on (every kernel once pyplot is imported) has a PNG formatter
    for all matplotlib figures that takes precedence over the figure's own method: it draws each
    chart twice, to crop it, and drops its alternative text. A formatter for `ReportFigure`
    itself comes first for report figures. Without a shell there is nothing to do.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    png = shell.display_formatter.formatters["image/png"]
    if ReportFigure not in png.type_printers:
        png.for_type(ReportFigure, ReportFigure._repr_png_)


def literal(labels: pd.Series) -> pd.Series:
    """CRM text as matplotlib shows it literally: a ``$`` would otherwise start mathematics."""
    return labels.astype("str").str.replace("$", r"\$", regex=False)


def short_label(text: str, limit: int = LABEL_LIMIT) -> str:
    """A name short enough for a chart: as it is, or its first part and an ellipsis.

    A name of at most ``limit`` characters is returned unchanged. A longer one is cut to
    ``limit - 1`` characters, back to the last space when that keeps at least two thirds of them,
    and ends in "…", so the result has at most ``limit`` characters.

    Args:
        text: The name, such as a manager's or a product's.
        limit: The most characters the result may have (at least 2).

    Returns:
        The name as a chart shows it, e.g. ``Amalgamated Regional-Trading-Ho…``.

    Raises:
        ValueError: If ``limit`` is below 2.
    """
    if limit < 2:
        raise ValueError(f"a label needs room for a character and the ellipsis, not {limit}")
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space >= 2 * (limit - 1) // 3:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def _head_and_tail(text: str, limit: int) -> str:
    """The first and the last words of a long name around "…", at most ``limit`` characters."""
    tail = text[-max(1, (limit - 1) // 2) :]
    space = tail.find(" ")
    if 0 <= space < len(tail.rstrip()) - 1:  # from the first whole word of the end
        tail = tail[space + 1 :]
    return text[: limit - 1 - len(tail)].rstrip() + ELLIPSIS + tail


def short_labels(labels: pd.Series, limit: int = LABEL_LIMIT) -> pd.Series:
    """Names shortened by `short_label` that stay as distinct as they were.

    Equal names get equal labels and a name that fits is never changed. Long names whose first
    part is the same show their last characters too (``Amalgamated Regiona…Anna Petrova``); a long
    name whose label still clashes is numbered (``Amalgamated Regional-Trading…(2)``).

    Args:
        labels: The names (any values; they are shown as text).
        limit: The most characters of a label (at least 2; numbered labels need 5).

    Returns:
        The labels, with the index of ``labels``.
    """
    texts = labels.astype("str")
    distinct = list(dict.fromkeys(texts))
    shown = {text: short_label(text, limit) for text in distinct}
    clashes = Counter(shown.values())
    for text in distinct:
        if len(text) > limit and clashes[shown[text]] > 1:
            shown[text] = _head_and_tail(text, limit)
    taken = {shown[text] for text in distinct if len(text) <= limit}
    for text in (text for text in distinct if len(text) > limit):
        number = 1
        while shown[text] in taken:
            number += 1
            suffix = f"{ELLIPSIS}({number})"
            shown[text] = text[: max(0, limit - len(suffix))].rstrip() + suffix
        taken.add(shown[text])
    return texts.map(shown)


def chart_labels(labels: pd.Series, limit: int = LABEL_LIMIT) -> pd.Series:
    """CRM names as a chart shows them: short and distinct (`short_labels`), and literal.

    Args:
        labels: The names, such as managers', products' or departments'.
        limit: The most characters of a label as shown.

    Returns:
        The labels, ready for tick labels, legend entries and annotations.
    """
    return literal(short_labels(labels, limit))


def wrap_title(title: str, width: float, names: tuple[str, ...] = ()) -> str:
    """A title broken into lines at spaces so that it fits a figure this wide.

    Args:
        title: The title, its names already shortened (`short_label`).
        width: The figure's width in inches; a line holds `TITLE_CHARACTERS_PER_INCH` per inch.
        names: Names in the title to keep on one line (a no-break space in them reads as a space).

    Returns:
        The title, lines joined by newlines; a title that fits stays one line.
    """
    glue = "\u00a0"
    for name in sorted(names, key=len, reverse=True):
        title = title.replace(name, name.replace(" ", glue))
    lines = textwrap.wrap(
        title,
        width=max(1, int(width * TITLE_CHARACTERS_PER_INCH)),
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines).replace(glue, " ")


def new_figure(
    width: float, height: float, alt: str, layout: str | None = "constrained"
) -> ReportFigure:
    """An empty report figure of this size (inches) with its alternative text.

    The layout engine (matplotlib's constrained layout by default) makes room for labels of any
    length each time the figure is drawn. A figure may instead place its axes itself
    (``layout=None``): by fixed margins where its labels are known to be short, or by
    `fit_axes` once its one axes is drawn and labelled; it then draws in less time.
    """
    show_with_alt()
    figure = ReportFigure(figsize=(width, height), dpi=100, layout=layout)
    figure.alt = alt
    return figure


def set_title(ax: Axes, title: str) -> None:
    """Title the axes just above its top edge, where a report chart draws nothing else.

    Otherwise matplotlib places a title again at every draw, clear of whatever the axes shows
    above its top edge, and measures the y axis once more to do so: half of a trend chart's
    drawing time. Report charts keep their x axis at the bottom, so the title lands where
    matplotlib would have put it.
    """
    ax.set_title(title, y=1.0)


def fit_axes(ax: Axes, pad: float = 0.05) -> None:
    """Place a figure's one axes so that its tick labels, axis labels and title fit the figure.

    What matplotlib's constrained layout does for a single axes, from the measured size of each
    text around it, but once, when the chart is made: the layout engine instead measures every
    artist of the figure twice more each time the figure is drawn (a report's bar, waterfall and
    forecast charts drew in 0.17 s with it, 0.11 s without). The figure must have been made
    without a layout engine (``new_figure(..., layout=None)``). Text inside the axes (bar labels,
    legends) is the chart's own business. Texts that would leave the axes less than a fifth of
    the figure are let overflow instead.

    Args:
        ax: The figure's only axes, with everything drawn and labelled.
        pad: Inches kept free between the outermost text and the figure's edge.
    """
    figure = ax.figure
    renderer = FigureCanvasAgg(figure).get_renderer()
    width, height = (float(size) for size in figure.get_size_inches())
    margins = (pad, pad, pad, pad)
    for _ in range(3):  # ticks may change with the axes' size: measure again where they land
        left, bottom, right, top = margins
        ax.set_position(
            [left / width, bottom / height, 1 - (left + right) / width, 1 - (bottom + top) / height]
        )
        left, bottom, right, top = (
            max(pad, side + pad) for side in _room_around(ax, renderer, figure.dpi)
        )
        # However long the labels, the plot keeps at least a fifth of each dimension.
        squeeze = min(1.0, 0.8 * width / (left + right), 0.8 * height / (bottom + top))
        placed, margins = margins, tuple(side * squeeze for side in (left, bottom, right, top))
        # Measured where they were set (to a millionth of an inch): placing again changes nothing.
        if max(abs(now - before) for now, before in zip(margins, placed, strict=True)) < 1e-6:
            return


def _room_around(ax: Axes, renderer: RendererBase, dpi: float) -> tuple[float, float, float, float]:
    """Inches that the axes' texts reach beyond it, as placed now: left, bottom, right, top.

    Tick labels and the title are measured where they are; the axis labels are placed when the
    figure is drawn, beyond the tick labels by their ``labelpad``, as matplotlib places them.
    """
    box = ax.get_window_extent(renderer)
    reach = [0.0, 0.0, 0.0, 0.0]

    def reach_of(text: Text) -> None:
        if text.get_visible() and text.get_text():
            extent = text.get_window_extent(renderer)
            reach[0] = max(reach[0], box.x0 - extent.x0)
            reach[1] = max(reach[1], box.y0 - extent.y0)
            reach[2] = max(reach[2], extent.x1 - box.x1)
            reach[3] = max(reach[3], extent.y1 - box.y1)

    for axis in (ax.xaxis, ax.yaxis):
        axis.get_majorticklabels()  # sets the ticks and their labels for the axes as placed now
        low, high = sorted(axis.get_view_interval())
        for tick in axis.get_major_ticks():
            if low <= tick.get_loc() <= high:
                reach_of(tick.label1)
    reach_of(ax.title)
    for axis, side in ((ax.xaxis, 1), (ax.yaxis, 0)):
        label = axis.label
        if label.get_visible() and label.get_text():
            extent = label.get_window_extent(renderer)
            size = extent.height if side == 1 else extent.width
            reach[side] += axis.labelpad * dpi / 72 + size
    left, bottom, right, top = (side / dpi for side in reach)
    return left, bottom, right, top


def _hbars(
    ax: Axes,
    labels: Sequence[str],
    values: Sequence[float],
    colours: str | Sequence[str],
    *,
    height: float = 0.8,
    offset: float = 0.0,
    label: str | None = None,
) -> None:
    """Horizontal bars, one slot per label from the top down, looking as seaborn's bar plots did.

    Plain `Axes.barh` costs a fraction of `seaborn.barplot`, which groups the data and computes
    an estimate and a confidence interval even for one value per bar. What a reader sees is kept:
    the colours desaturated as seaborn's (saturation 0.75), bars ``0.8`` of a slot thick (split
    by ``height`` and ``offset`` for bars side by side), the first label at the top and the axis
    ending half a slot beyond the outer bars. A NaN value keeps its slot and draws no bar.

    Args:
        ax: The axes to draw on.
        labels: The tick labels, top first, already shortened and literal.
        values: One value per label (NaN: no bar).
        colours: One colour for all bars, or one per label.
        height: The bars' thickness, as a share of a slot.
        offset: How far the bars' centres lie below their slot's centre (for dodged bars).
        label: The legend entry of these bars (only when any is drawn).
    """
    amounts = np.asarray(values, dtype=float)
    shown = ~np.isnan(amounts)
    if isinstance(colours, str):
        colours = [colours] * len(amounts)
    faces = [
        sns.desaturate(colour, 0.75) for colour, keep in zip(colours, shown, strict=True) if keep
    ]
    if shown.any():
        positions = np.arange(len(amounts), dtype=float)[shown] + offset
        ax.barh(positions, amounts[shown], height=height, color=faces, label=label)
    if len(labels):
        ax.set_yticks(range(len(labels)), labels=list(labels))
        ax.set_ylim(len(labels) - 0.5, -0.5)


def score_chart(managers: pd.DataFrame) -> Figure:
    """Horizontal bars of the managers' weighted scores against the 100% line.

    Args:
        managers: Columns ``name`` and ``score`` (a share; NaN bars are left out). Long names
            are shortened (`chart_labels`).
    """
    data = managers.dropna(subset=["score"]).sort_values("score", ascending=False)
    data = data.assign(name=chart_labels(data["name"]))
    figure = new_figure(
        7, 0.45 * max(len(data), 2) + 1, "Weighted KPI score per manager", layout=None
    )
    ax = figure.subplots()
    colours = [PALETTE["met"] if s >= 1 else PALETTE["missed"] for s in data["score"]]
    _hbars(ax, data["name"].tolist(), data["score"].tolist(), colours)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--")
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(xlabel="Weighted KPI score (100% = every target met)", ylabel="")
    fit_axes(ax)
    return figure


def profit_chart(profit: pd.DataFrame, currency: str) -> Figure:
    """Revenue beside net profit per manager: where they diverge, revenue misleads.

    A manager without either amount has no slot. A measure with no amount at all (no cost data
    means no net profit) is left out of the bars and the legend, and the other one's bars take
    the whole slot in their own colour; otherwise each pair shares its slot, revenue on top.

    Args:
        profit: Columns ``Manager``, ``Revenue`` and ``Net profit``. Long names are shortened
            (`chart_labels`).
        currency: For the axis label.
    """
    measures = {"Revenue": PALETTE["revenue"], "Net profit": PALETTE["profit"]}
    data = profit.assign(Manager=chart_labels(profit["Manager"])).dropna(
        subset=list(measures), how="all"
    )
    figure = new_figure(
        7, 0.5 * max(len(profit), 2) + 1.2, "Revenue and net profit per manager", layout=None
    )
    ax = figure.subplots()
    drawn = [measure for measure in measures if data[measure].notna().any()]
    height = 0.8 / max(len(drawn), 1)
    for number, measure in enumerate(drawn):
        _hbars(
            ax,
            data["Manager"].tolist(),
            data[measure].astype(float).tolist(),
            # By name: without cost data the net profit bars are missing, revenue keeps its own.
            measures[measure],
            height=height,
            offset=(number + 0.5) * height - 0.4,
            label=measure,
        )
    ax.xaxis.set_major_formatter(money_axis(currency))
    ax.set(xlabel=f"Amount, {currency}", ylabel="")
    if drawn:
        ax.legend(title="", loc="lower right")
    fit_axes(ax)
    return figure


def trend_chart(trend: pd.DataFrame, metrics: tuple[str, ...], currency: str) -> Figure:
    """Small multiples: one line per indicator over the months of the trend window.

    Each panel joins the indicator's known months in time order (a NaN month is skipped, not
    a gap), marked as seaborn's line plots mark them: filled dots with a thin white edge.

    Args:
        trend: Column ``month`` (timestamps) and one column per indicator id.
        metrics: The indicators to draw, in order.
        currency: For money axes.
    """
    labels = ", ".join(METRICS[m].label.lower() for m in metrics)
    rows = (len(metrics) + 1) // 2
    width, height = 9.0, 2.2 * rows + 0.5
    # Every label here is short (indicator names, 1.5M, 45%, 2026-03), so the panels are placed
    # by fixed margins in inches rather than by a layout engine.
    left, right, bottom, top, column_gap, row_gap = 0.75, 0.2, 0.75, 0.35, 0.85, 0.45
    panel_width = (width - left - right - column_gap) / 2
    panel_height = (height - bottom - top - row_gap * (rows - 1)) / rows
    figure = new_figure(width, height, f"Monthly trend of {labels}", layout=None)
    axes = figure.subplots(
        rows,
        2,
        sharex=True,
        squeeze=False,
        gridspec_kw={
            "left": left / width,
            "right": 1 - right / width,
            "bottom": bottom / height,
            "top": 1 - top / height,
            "wspace": column_gap / panel_width,
            "hspace": row_gap / panel_height,
        },
    ).ravel()
    ordered = trend.sort_values("month", kind="stable")
    for ax, metric in zip(axes, metrics, strict=False):
        points = ordered[["month", metric]].dropna()
        ax.plot(
            points["month"].to_numpy(),
            points[metric].astype(float).to_numpy(),
            marker="o",
            markeredgecolor="white",
            markeredgewidth=0.75,
            color=PALETTE["profit"],
        )
        unit = METRICS[metric].unit
        if unit == "money":
            ax.yaxis.set_major_formatter(money_axis(currency))
        elif unit == "share":
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        set_title(ax, METRICS[metric].label)
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="x", labelrotation=45)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return figure


def share_chart(table: pd.DataFrame, label: str, currency: str) -> Figure:
    """Revenue by a dimension (product, segment, sale type) as horizontal bars.

    Args:
        table: Columns `label` and ``Revenue`` (a NaN keeps its row's slot without a bar).
        label: The dimension column; long names in it are shortened (`chart_labels`).
        currency: For the axis label.
    """
    table = table.assign(**{label: chart_labels(table[label])})
    figure = new_figure(7, 0.4 * max(len(table), 2) + 1, f"Revenue by {label.lower()}", layout=None)
    ax = figure.subplots()
    _hbars(ax, table[label].tolist(), table["Revenue"].astype(float).tolist(), PALETTE["profit"])
    ax.xaxis.set_major_formatter(money_axis(currency))
    ax.set(xlabel=f"Revenue, {currency}", ylabel="")
    fit_axes(ax)
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
    contribution is labelled "no data" without a bar, and the end is then unknown too. Long bar
    labels (a manager's or a product's name) are shortened (`short_labels`), in the title too
    where it names the reference or the end, and a long title is wrapped (`wrap_title`); the
    alternative text keeps them whole.

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
    shown = short_labels(pd.Series([start_label, *table["label"].astype("str"), end_label]))
    ends = {start_label: shown.iloc[0], end_label: shown.iloc[-1]}
    for name in sorted(ends, key=len, reverse=True):  # a longer name may hold the shorter one
        title = title.replace(name, ends[name])
    labels = list(literal(shown))
    width = max(6.0, 0.8 * len(labels) + 1.5)
    title = literal(pd.Series([wrap_title(title, width, tuple(ends.values()))])).iloc[0]
    figure = new_figure(width, 4.8, alt, layout=None)
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
    set_title(ax, title)
    ax.set(xlabel="", ylabel=f"Amount, {currency}")
    fit_axes(ax)
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
    figure = new_figure(9, 4.5, alt, layout=None)
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
    set_title(ax, "Monthly revenue: actual and forecast")
    ax.set(xlabel="", ylabel=f"Revenue, {currency}")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(loc="upper left", fontsize="small")
    fit_axes(ax)
    return figure
