"""Small, exact CRM fixtures shared by the tests, the docs and the notebook test."""

from __future__ import annotations

import pandas as pd

from kpilib.schemas import CRM
from kpilib.validation import validate_tables


def vasily_valery_tables() -> dict[str, pd.DataFrame]:
    """The source documents' example: equal revenue, different net profit.

    Vasily sold 400,000 RUB with cost price 150,000 and 100 technical hours (at 1,500 RUB/h: net
    profit 100,000); Valery sold 400,000 with cost price 150,000 and no extra hours (net profit
    250,000). Both deals closed in March 2025, the last on the 31st, so March is a complete month.
    """
    managers = pd.DataFrame(
        {
            "manager_id": ["vasily", "valery"],
            "department_id": ["sales", "sales"],
            "name": ["Vasily", "Valery"],
        }
    )
    deals = pd.DataFrame(
        {
            "deal_id": ["1", "2"],
            "manager_id": ["vasily", "valery"],
            "stage": ["won", "won"],
            "created_on": ["2025-03-03", "2025-03-05"],
            "closed_on": ["2025-03-20", "2025-03-31"],
            "amount": ["400000", "400000"],
            "cost_price": ["150000", "150000"],
            "extra_hours": ["100", "0"],
        }
    )
    return {"managers": managers, "deals": deals}


def vasily_valery() -> CRM:
    """The documents' example as a validated data source."""
    return validate_tables(vasily_valery_tables(), source="vasily-valery example")
