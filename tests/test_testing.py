"""Hostile CRM names: only names change, every hostile text is there, and Parquet keeps it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kpilib.demo import DemoConfig, generate
from kpilib.io import read_source, write_tables
from kpilib.testing import HOSTILE_TEXTS, hostile_tables

NAMED = ("departments", "managers", "products", "clients")


@pytest.fixture(scope="module")
def demo() -> dict[str, pd.DataFrame]:
    return generate(DemoConfig(months=24, end="2025-12", managers_per_department=6))


@pytest.fixture(scope="module")
def hostile(demo) -> dict[str, pd.DataFrame]:
    return hostile_tables(demo)


def test_hostile_texts_hold_markup_quotes_long_bidi_cyrillic_and_formulas():
    assert {"<script>alert(1)</script>", "<img src=x onerror=alert(2)>"} <= set(HOSTILE_TEXTS)
    assert any("'" in text and '"' in text for text in HOSTILE_TEXTS)
    assert max(len(text) for text in HOSTILE_TEXTS) >= 300
    assert any("\u0600" <= char <= "\u06ff" for text in HOSTILE_TEXTS for char in text)  # Arabic
    assert any("\u0590" <= char <= "\u05ff" for text in HOSTILE_TEXTS for char in text)  # Hebrew
    assert any("\u0400" <= char <= "\u04ff" for text in HOSTILE_TEXTS for char in text)
    formulas = ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "@SUM(1+1)"]
    assert {*formulas, "-2+3"} <= set(HOSTILE_TEXTS)
    assert len(HOSTILE_TEXTS) == len(set(HOSTILE_TEXTS))


def test_only_the_names_change(demo, hostile):
    assert list(demo) == list(hostile)
    for table, frame in demo.items():
        changed = ["name"] if table in NAMED else []
        pd.testing.assert_frame_equal(
            frame.drop(columns=changed), hostile[table].drop(columns=changed)
        )
    for table in NAMED:
        assert 0 == hostile[table]["name"].eq(demo[table]["name"]).sum()


def test_the_input_tables_are_left_as_they_were(demo):
    before = {table: frame.copy() for table, frame in demo.items()}
    hostile_tables(demo)
    for table, frame in before.items():
        pd.testing.assert_frame_equal(frame, demo[table])


def test_first_rows_get_the_bare_texts_and_later_rows_keep_their_name_after_it(demo, hostile):
    clients = hostile["clients"]["name"].tolist()
    assert list(HOSTILE_TEXTS) == clients[: len(HOSTILE_TEXTS)]
    original = demo["clients"]["name"].iloc[len(HOSTILE_TEXTS)]
    assert f"{HOSTILE_TEXTS[0]} {original}" == clients[len(HOSTILE_TEXTS)]
    assert list(HOSTILE_TEXTS[:6]) == hostile["departments"]["name"].tolist()


def test_names_that_were_distinct_stay_distinct(demo, hostile):
    for table in NAMED:
        assert demo[table]["name"].is_unique  # the demo's names are distinct
        assert hostile[table]["name"].is_unique


def test_one_departments_managers_and_the_products_carry_every_hostile_text(hostile):
    managers = hostile["managers"]
    north = managers.loc[managers["department_id"].eq("north"), "name"]
    assert set(HOSTILE_TEXTS) == set(north) | set(hostile["products"]["name"])


def test_a_missing_name_is_replaced_by_the_text_and_the_id():
    managers = pd.DataFrame(
        {
            "manager_id": [f"m{n}" for n in range(len(HOSTILE_TEXTS) + 1)],
            "department_id": "sales",
            "name": [*(["x"] * len(HOSTILE_TEXTS)), None],
        }
    )
    names = hostile_tables({"managers": managers})["managers"]["name"]
    assert f"{HOSTILE_TEXTS[0]} m{len(HOSTILE_TEXTS)}" == names.iloc[-1]


def test_parquet_keeps_every_hostile_text_exactly(hostile, tmp_path: Path):
    write_tables(hostile, tmp_path, fmt="parquet")
    crm = read_source(tmp_path)
    for table in NAMED:
        assert hostile[table]["name"].tolist() == getattr(crm, table)["name"].tolist()
