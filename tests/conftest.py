"""Shared tiny fixtures: a pipe-table builder and one small, hand-checked sales data source.

The sales source has two sales departments (north: m1 the star and m2; south: m3) and a service
department (logistics), with won deals in March 2024 and March 2025, so that March 2025 can be
scored against its year-ago baseline. Every figure the tests expect is worked out by hand in the
test that uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from kpilib import paths
from kpilib.demo import DemoConfig, generate
from kpilib.io import write_tables
from kpilib.monthly import MonthlyReport, prepare_monthly
from kpilib.schemas import CRM
from kpilib.validation import validate_tables

SCHEME = str(paths.DEFAULT_SCHEME)


def pipe_table(text: str) -> pd.DataFrame:
    """A DataFrame of strings from a ``|``-separated table; an empty cell is missing."""
    lines = [line.split("|") for line in text.strip().splitlines()]
    header = [cell.strip() for cell in lines[0]]
    body = [[cell.strip() or None for cell in line] for line in lines[1:]]
    return pd.DataFrame(body, columns=header, dtype="str")


def sales_tables() -> dict[str, pd.DataFrame]:
    """The raw (all-text) tables of the small sales source."""
    return {
        "departments": pipe_table("""
            department_id | name      | kind
            north         | North     | sales
            south         | South     | sales
            logistics     | Logistics | service
        """),
        "managers": pipe_table("""
            manager_id | department_id | name  | tier
            m1         | north         | Anna  | star
            m2         | north         | Boris |
            m3         | south         | Vera  | regular
        """),
        "clients": pipe_table("""
            client_id | name   | segment
            c1        | Alpha  | SMB
            c2        | Beta   | SMB
            c3        | Gamma  | SMB
            c4        | Delta  | Enterprise
            c5        | Omega  | SMB
        """),
        "products": pipe_table("""
            product_id | name    | category
            p1         | Servers | hardware
            p2         | Support | services
        """),
        "deals": pipe_table("""
            deal_id | manager_id | stage | created_on | closed_on  | amount  | client_id | product_id | lead_id
            d01     | m1         | won   | 2024-03-01 | 2024-03-10 | 100000  | c1        | p1         |
            d02     | m2         | won   | 2024-03-02 | 2024-03-15 | 200000  | c2        | p1         |
            d03     | m3         | won   | 2024-03-03 | 2024-03-20 | 50000   | c3        | p1         |
            d11     | m1         | won   | 2025-03-01 | 2025-03-05 | 1600000 | c4        | p1         | l1
            d12     | m1         | won   | 2025-03-02 | 2025-03-20 | 50000   | c1        | p2         |
            d13     | m1         | lost  | 2025-03-03 | 2025-03-21 | 70000   | c2        | p2         |
            d14     | m2         | won   | 2025-03-04 | 2025-03-12 | 180000  | c5        | p2         | l3
            d15     | m2         | open  | 2025-03-25 |            | 999     | c2        | p2         |
            d16     | m3         | won   | 2025-03-05 | 2025-03-07 | 60000   | c3        | p1         |
        """),  # noqa: E501 (a table reads best on one line per row)
        "deliveries": pipe_table("""
            deal_id | promised_on | delivered_on | department_id
            d11     | 2025-03-10  | 2025-03-09   | logistics
            d12     | 2025-03-25  | 2025-03-28   | logistics
            d14     | 2025-03-20  |              | logistics
            d16     | 2025-03-10  | 2025-03-10   | logistics
        """),
        "requests": pipe_table("""
            request_id | received_at         | first_response_at   | manager_id
            r1         | 2025-03-03 09:00:00 | 2025-03-03 13:00:00 | m1
            r2         | 2025-03-10 10:00:00 | 2025-03-11 00:00:00 | m1
            r3         | 2025-03-15 08:00:00 |                     | m2
            r4         | 2025-03-05 12:00:00 | 2025-03-05 14:30:00 | m3
        """),
        "leads": pipe_table("""
            lead_id | created_on | channel | manager_id | cost
            l1      | 2025-03-01 | web     | m1         | 1000
            l2      | 2025-03-02 | web     | m1         | 3000
            l3      | 2025-03-03 | phone   | m2         | 2000
            l4      | 2025-02-20 | phone   | m2         | 500
        """),
    }


@pytest.fixture
def table() -> Callable[[str], pd.DataFrame]:
    """The pipe-table builder, for tests that make their own tiny tables."""
    return pipe_table


@pytest.fixture
def raw_sales() -> dict[str, pd.DataFrame]:
    """Fresh raw tables of the small sales source."""
    return sales_tables()


@pytest.fixture
def sales_crm() -> CRM:
    """The small sales source, validated."""
    return validate_tables(sales_tables(), source="tests/conftest.py sales source")


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> Path:
    """The default demo data source, written once per test run."""
    folder = tmp_path_factory.mktemp("demo")
    write_tables(generate(DemoConfig()), folder)
    return folder


@pytest.fixture(scope="session")
def report(source) -> MonthlyReport:
    """North's monthly report for September 2026 on the demo data."""
    return prepare_monthly(department="north", period="2026-09", data=str(source), scheme=SCHEME)
