"""Figure factories: PNG output with alternative text, CRM text shown literally and short."""

from __future__ import annotations

import itertools
import logging
import warnings

import pandas as pd
import pytest
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kpilib import plots
from kpilib.testing import HOSTILE_TEXTS

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


def test_trend_chart_fits_its_widest_labels_inside_the_figure():
    """The trend chart places its panels by fixed margins: long axis labels must still fit."""
    months = pd.date_range("2021-01-01", periods=60, freq="MS")
    trend = pd.DataFrame(
        {
            "month": months,
            "revenue": [-1.2345e9 + 5e7 * n for n in range(60)],
            "net_profit": [-987_654.0 * n for n in range(60)],
            "deals_won": [1_234_567.0 + n for n in range(60)],
            "win_rate": [0.1234 + n / 100 for n in range(60)],
            "avg_deal": [12_345.678 * n for n in range(60)],
        }
    )
    figure = plots.trend_chart(trend, tuple(trend.columns[1:]), "RUB")
    FigureCanvasAgg(figure).draw()
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    visible = [ax for ax in figure.axes if ax.get_visible()]
    boxes = [ax.get_tightbbox(renderer) for ax in visible]

    assert 5 == len(visible)
    for box in boxes:
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    for one, other in itertools.combinations(boxes, 2):
        assert not one.overlaps(other)


def _widest_charts() -> dict[str, Figure]:
    """Each chart placed by `plots.fit_axes`, with the longest names and the widest amounts."""
    names = [f"{HOSTILE_TEXTS[3]} {n}" for n in range(6)] + ["$\\frac{1}$ Ltd", "Ромашка $5"]
    amounts = [-1.2345e9 + 3.3e8 * n for n in range(len(names))]
    managers = pd.DataFrame({"name": names, "score": [0.05 + 0.3 * n for n in range(8)]})
    profit = pd.DataFrame({"Manager": names, "Revenue": amounts, "Net profit": amounts[::-1]})
    products = pd.DataFrame({"Product": names, "Revenue": amounts})
    steps = pd.DataFrame({"label": names[:5], "contribution": [-7.7e8, 1.2e9, -3e8, 5e8, 9e8]})
    title = f"Revenue: from {names[0]} to {names[1]}, a gap explained by every driver"
    history = pd.Series(
        [1.2345e9 + 1e8 * (n % 5) for n in range(18)],
        index=pd.period_range("2025-04", periods=18, freq="M"),
    )
    future = pd.DataFrame(
        {
            "month": pd.period_range("2026-10", periods=3, freq="M"),
            "forecast": [1.3e9, 1.4e9, 1.5e9],
            "lower": [1.1e9, 1.1e9, 1.1e9],
            "upper": [1.6e9, 1.8e9, 2.0e9],
            "naive": [1.2e9, 1.3e9, 1.35e9],
            "plan": [1.25e9, 1.5e9, 1.6e9],
        }
    )
    return {
        "score": plots.score_chart(managers),
        "profit": plots.profit_chart(profit, "RUB"),
        "share": plots.share_chart(products, "Product", "RUB"),
        "waterfall": plots.waterfall_chart(steps, names[0], names[1], "RUB", title, start=-1e9),
        "forecast": plots.forecast_chart(history, future, "RUB"),
    }


@pytest.mark.parametrize("kind", ["score", "profit", "share", "waterfall", "forecast"])
def test_a_chart_placed_by_its_labels_keeps_them_all_inside_the_figure(kind, caplog):
    """Without a layout engine, `fit_axes` must still make room for the widest labels (names
    shortened to the limit, amounts in billions, rotated ticks, a wrapped title), and leave the
    plot most of the figure."""
    figure = _widest_charts()[kind]
    assert figure.get_layout_engine() is None
    _draw_quietly(figure, caplog)
    renderer = figure.canvas.get_renderer()
    (ax,) = figure.axes
    page, plot = figure.bbox, ax.get_window_extent(renderer)
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label]
    for axis in (ax.xaxis, ax.yaxis):  # the ticks drawn: those within the axis' range
        low, high = sorted(axis.get_view_interval())
        texts += [t.label1 for t in axis.get_major_ticks() if low <= t.get_loc() <= high]
    for text in texts:
        if text.get_visible() and text.get_text():
            box = text.get_window_extent(renderer)
            inside = page.x0 <= box.x0 and box.x1 <= page.x1
            inside = inside and page.y0 <= box.y0 and box.y1 <= page.y1
            assert inside, f"{text.get_text()!r} at {box} leaves the figure {page}"
    box = ax.get_tightbbox(renderer)
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    assert plot.width > 0.4 * page.width and plot.height > 0.3 * page.height


def test_fit_axes_keeps_a_fifth_of_a_figure_too_small_for_its_labels():
    figure = plots.new_figure(1.5, 1.0, "Too small", layout=None)
    ax = figure.subplots()
    ax.barh([0, 1], [1e9, 2e9])
    ax.set_yticks([0, 1], labels=["x" * 32, "y" * 32])
    ax.set(title="A title", xlabel="Revenue, RUB", ylabel="Manager")
    plots.fit_axes(ax)
    box = ax.get_position()
    assert box.width >= 0.2 - 1e-9 and box.height >= 0.2 - 1e-9
    assert 0 <= box.x0 and box.x1 <= 1 and 0 <= box.y0 and box.y1 <= 1


@pytest.mark.parametrize("rotation", [0, 45])
def test_set_title_puts_the_title_where_matplotlib_places_it_on_a_chart(rotation: int):
    """The fixed title lands exactly where matplotlib's own placement, redone at each draw,
    puts it above a chart with its x axis at the bottom, rotated tick labels included."""

    def drawn(title: object) -> tuple[float, ...]:
        figure = plots.new_figure(6, 3, "Title", layout=None)
        ax = figure.subplots()
        ax.plot(pd.date_range("2026-01-31", periods=12, freq="ME"), range(12))
        ax.tick_params(axis="x", labelrotation=rotation)
        title(ax)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        return tuple(ax.title.get_window_extent(canvas.get_renderer()).bounds)

    fixed = drawn(lambda ax: plots.set_title(ax, "Revenue by month"))

    assert fixed == drawn(lambda ax: ax.set_title("Revenue by month"))


def test_short_label_keeps_a_name_that_fits_up_to_the_exact_limit():
    assert "Anna Petrova" == plots.short_label("Anna Petrova")
    assert "x" * 32 == plots.short_label("x" * 32)
    assert "abcde" == plots.short_label("abcde", limit=5)


def test_short_label_cuts_a_long_name_to_its_first_part_and_an_ellipsis():
    assert "x" * 31 + "\u2026" == plots.short_label("x" * 33)
    assert "abcd\u2026" == plots.short_label("abcdef", limit=5)
    assert "Amalgamated Regional-Trading-Ho\u2026" == plots.short_label(HOSTILE_TEXTS[3])


def test_short_label_cuts_at_a_space_near_the_end_only():
    label = plots.short_label("Baseline (2025-09 to 2025-11 (monthly mean))")
    assert "Baseline (2025-09 to 2025-11\u2026" == label
    assert "ab cdefghi\u2026" == plots.short_label("ab cdefghijklmn", limit=11)


def test_short_label_needs_room_for_the_ellipsis():
    with pytest.raises(ValueError, match="not 1"):
        plots.short_label("Anna", limit=1)


def test_short_labels_tell_long_names_with_the_same_start_apart():
    long = "Amalgamated " + "Regional-Trading-House " * 5
    names = pd.Series(
        [f"{long}Anna Petrova", f"{long}Boris Ivanov", "Vera", f"{long}Anna Petrova"],
        index=[10, 11, 12, 13],
    )
    labels = plots.short_labels(names)
    assert [
        "Amalgamated Regiona\u2026Anna Petrova",
        "Amalgamated Regiona\u2026Boris Ivanov",
        "Vera",
        "Amalgamated Regiona\u2026Anna Petrova",
    ] == list(labels)
    assert [10, 11, 12, 13] == list(labels.index)


def test_short_labels_number_long_names_that_still_clash():
    long = "x" * 40
    names = pd.Series([f"{long}a{long}", f"{long}b{long}", f"{long}c{long}"])
    labels = list(plots.short_labels(names))
    assert 3 == len(set(labels))
    assert [32, 32, 32] == [len(label) for label in labels]
    assert ["x" * 28 + "\u2026(2)", "x" * 28 + "\u2026(3)"] == labels[1:]


def test_short_labels_never_take_the_label_of_a_name_that_fits():
    fits = "x" * 31 + "\u2026"
    labels = plots.short_labels(pd.Series(["x" * 40, fits]))
    assert fits == labels.iloc[1]
    assert fits != labels.iloc[0]
    assert 32 >= len(labels.iloc[0])


def test_chart_labels_shorten_before_escaping_dollars():
    labels = plots.chart_labels(pd.Series(["$" * 40, "$5 Ltd"]))
    assert ["\\$" * 31 + "\u2026", "\\$5 Ltd"] == list(labels)


def _shown(text: str) -> str:
    return text.replace("\\$", "$")


def _draw_quietly(figure: Figure, caplog: pytest.LogCaptureFixture) -> None:
    """Render the figure; fail on any warning, logged or raised, such as a collapsed layout."""
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure._repr_png_()
    assert [] == [str(warning.message) for warning in caught]
    assert [] == [record.getMessage() for record in caplog.records]


def test_charts_of_hostile_names_draw_short_labels_without_a_warning(caplog):
    names = [*HOSTILE_TEXTS, f"{HOSTILE_TEXTS[3]} Anna Petrova"]
    count = len(names)
    managers = pd.DataFrame({"name": names, "score": [0.5 + 0.1 * n for n in range(count)]})
    profit = pd.DataFrame(
        {"Manager": names, "Revenue": [1e6 * (n + 1) for n in range(count)], "Net profit": 5e5}
    )
    products = pd.DataFrame({"Product": names, "Revenue": [1e6] * count})
    for figure in (
        plots.score_chart(managers),
        plots.profit_chart(profit, "RUB"),
        plots.share_chart(products, "Product", "RUB"),
    ):
        _draw_quietly(figure, caplog)
        ticks = [_shown(tick.get_text()) for tick in figure.axes[0].get_yticklabels()]
        assert count == len(set(ticks))
        assert plots.LABEL_LIMIT == max(len(tick) for tick in ticks)
        assert {short for short in ticks if len(short) < plots.LABEL_LIMIT} <= set(names)


def test_waterfall_of_two_long_names_shortens_its_ticks_and_title_not_its_alt(caplog):
    high, low = f"{HOSTILE_TEXTS[3]} Anna", f"{HOSTILE_TEXTS[3]} Boris"
    table = pd.DataFrame({"label": ["Win rate", "Average deal"], "contribution": [-2e5, -1e5]})
    title = f"Net profit: from {high} to {low}"
    figure = plots.waterfall_chart(table, high, low, "RUB", title, start=1e6)
    _draw_quietly(figure, caplog)
    short_high, short_low = (
        "Amalgamated Regional-Tradin\u2026Anna",
        "Amalgamated Regional-Tradi\u2026Boris",
    )
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert [short_high, "Win rate", "Average deal", short_low] == ticks
    assert f"Net profit: from\n{short_high} to\n{short_low}" == figure.axes[0].get_title()
    assert figure.alt.startswith(f"{title}: from {high} 1.0M RUB to {low} 700.0K RUB")


def test_wrap_title_breaks_a_long_title_between_names_not_inside_them():
    title = "Net profit: from Anna Maria Petrova to Boris Ivanov"
    assert title == plots.wrap_title(title, 8.0)
    assert "Net profit: from Anna\nMaria Petrova to Boris\nIvanov" == plots.wrap_title(title, 3.0)
    names = ("Anna Maria Petrova", "Boris Ivanov")
    wrapped = plots.wrap_title(title, 3.0, names)
    assert "Net profit: from\nAnna Maria Petrova to\nBoris Ivanov" == wrapped


def _bar_colours(figure: Figure) -> set[tuple[float, ...]]:
    return {tuple(p.get_facecolor()) for p in figure.axes[0].patches if p.get_width()}


def test_profit_chart_without_cost_data_keeps_the_revenue_colour() -> None:
    # A source without costs (no net profit) leaves one measure; its bars keep their own colour.
    full = pd.DataFrame({"Manager": ["A", "B"], "Revenue": [5.0, 3.0], "Net profit": [2.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figure = plots.profit_chart(full.assign(**{"Net profit": None}), "USD")
    revenue_only = plots.profit_chart(full.assign(**{"Net profit": 0.0}), "USD")
    assert len(_bar_colours(figure)) == 1
    assert _bar_colours(figure) <= _bar_colours(revenue_only)


def _bars(figure: Figure) -> list[tuple[str, float, tuple[float, ...]]]:
    """The drawn bars from the top down: the tick label of each one's slot, its value, colour."""
    ax = figure.axes[0]
    assert ax.yaxis_inverted()  # the first slot (y = 0) is at the top
    ticks = dict(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()], strict=True))
    bars = sorted((p for p in ax.patches if p.get_height()), key=lambda p: p.get_y())
    return [
        (ticks[round(p.get_y() + p.get_height() / 2)], p.get_width(), tuple(p.get_facecolor()))
        for p in bars
    ]


def _faded(colour: str) -> tuple[float, ...]:
    return (*sns.desaturate(colour, 0.75), 1.0)


def test_score_chart_ranks_bars_from_the_top_and_leaves_out_unknown_scores() -> None:
    managers = pd.DataFrame(
        {"name": ["Anna", "Boris", "Vera", "Gleb"], "score": [0.9, 1.2, None, 1.0]}
    )
    figure = plots.score_chart(managers)
    met, missed = _faded(plots.PALETTE["met"]), _faded(plots.PALETTE["missed"])
    assert [("Boris", 1.2, met), ("Gleb", 1.0, met), ("Anna", 0.9, missed)] == _bars(figure)
    ax = figure.axes[0]
    assert ["Boris", "Gleb", "Anna"] == [t.get_text() for t in ax.get_yticklabels()]
    assert (2.5, -0.5) == ax.get_ylim()
    assert 0.0 == ax.get_xlim()[0]
    assert {0.8} == {p.get_height() for p in ax.patches}


def test_share_chart_keeps_the_given_order_and_the_slot_of_an_unknown_revenue() -> None:
    table = pd.DataFrame(
        {"Segment": ["Retail", "$ Wholesale", "Online"], "Revenue": [2e6, None, 3e6]}
    )
    figure = plots.share_chart(table, "Segment", "RUB")
    colour = _faded(plots.PALETTE["profit"])
    assert [("Retail", 2e6, colour), ("Online", 3e6, colour)] == _bars(figure)
    ax = figure.axes[0]
    assert ["Retail", "\\$ Wholesale", "Online"] == [t.get_text() for t in ax.get_yticklabels()]
    assert (2.5, -0.5) == ax.get_ylim()
    assert 0.0 == ax.get_xlim()[0]


def test_profit_chart_pairs_revenue_above_net_profit_in_each_managers_slot() -> None:
    profit = pd.DataFrame(
        {
            "Manager": ["Anna", "Boris", "Vera", "Gleb"],
            "Revenue": [5e6, 4e6, None, None],
            "Net profit": [1e6, None, None, -2e5],
        }
    )
    figure = plots.profit_chart(profit, "RUB")
    revenue, net = _faded(plots.PALETTE["revenue"]), _faded(plots.PALETTE["profit"])
    # Vera has neither amount and no slot; Gleb, without revenue, keeps his place.
    assert [
        ("Anna", 5e6, revenue),
        ("Anna", 1e6, net),
        ("Boris", 4e6, revenue),
        ("Gleb", -2e5, net),
    ] == _bars(figure)
    ax = figure.axes[0]
    assert ["Anna", "Boris", "Gleb"] == [t.get_text() for t in ax.get_yticklabels()]
    assert [-0.4, 0.0, 0.6, 2.0] == pytest.approx(sorted(p.get_y() for p in ax.patches))
    assert [0.4] * 4 == pytest.approx([p.get_height() for p in ax.patches])
    legend = ax.get_legend()
    assert ["Revenue", "Net profit"] == [t.get_text() for t in legend.get_texts()]
    assert [revenue, net] == [tuple(h.get_facecolor()) for h in legend.legend_handles]


def test_profit_chart_without_cost_data_gives_revenue_the_whole_slot() -> None:
    profit = pd.DataFrame({"Manager": ["A", "B"], "Revenue": [5.0, 3.0], "Net profit": None})
    ax = plots.profit_chart(profit, "USD").axes[0]
    assert [-0.4, 0.6] == pytest.approx(sorted(p.get_y() for p in ax.patches))
    assert [0.8, 0.8] == pytest.approx([p.get_height() for p in ax.patches])
    assert ["Revenue"] == [t.get_text() for t in ax.get_legend().get_texts()]


def test_trend_chart_joins_the_known_months_in_time_order() -> None:
    months = pd.date_range("2025-01-01", periods=4, freq="MS")
    trend = pd.DataFrame(
        {"month": months, "revenue": [1e6, None, 3e6, 2e6], "win_rate": [0.3, 0.4, 0.2, None]}
    ).iloc[[2, 0, 3, 1]]
    figure = plots.trend_chart(trend, ("revenue", "win_rate"), "RUB")
    lines = [ax.lines for ax in figure.axes if ax.get_visible()]
    assert [1, 1] == [len(panel) for panel in lines]
    (revenue,), (win_rate,) = lines
    assert list(months[[0, 2, 3]]) == list(pd.to_datetime(revenue.get_xdata()))
    assert [1e6, 3e6, 2e6] == list(revenue.get_ydata())
    assert list(months[:3]) == list(pd.to_datetime(win_rate.get_xdata()))
    assert [0.3, 0.4, 0.2] == pytest.approx(list(win_rate.get_ydata()))
    assert ("o", plots.PALETTE["profit"]) == (revenue.get_marker(), revenue.get_color())
