"""Notebooks stay thin: committed without outputs, literal parameters, no definitions in cells."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from kpilib import paths
from kpilib.render import declared_parameters

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))


def _code_cells(notebook: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(notebook):
    dirty = [i for i, c in enumerate(_code_cells(notebook)) if c.outputs or c.execution_count]
    assert [] == dirty


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_parameters_cell_of_literals(notebook):
    first = _code_cells(notebook)[0]
    assert "parameters" in first.metadata.get("tags", [])
    for statement in ast.parse(first.source).body:
        assert isinstance(statement, ast.AnnAssign | ast.Assign)
        ast.literal_eval(statement.value)  # raises on anything but a literal


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_cells_define_no_functions_or_classes(notebook):
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    for cell in _code_cells(notebook):
        assert not any(isinstance(node, definitions) for node in ast.walk(ast.parse(cell.source)))


def test_monthly_notebook_declares_what_the_runner_passes():
    declared = set(declared_parameters(paths.MONTHLY_NOTEBOOK))
    expected = {
        "department",
        "period",
        "data",
        "mapping",
        "scheme",
        "currency",
        "trend_months",
        "technical_hour_cost",
        "department_name",
        "results_path",
    }
    assert expected == declared


def test_quarterly_notebook_declares_what_the_runner_passes():
    declared = set(declared_parameters(paths.QUARTERLY_NOTEBOOK))
    expected = {
        "department",
        "period",
        "data",
        "mapping",
        "scheme",
        "currency",
        "link_months",
        "technical_hour_cost",
        "department_name",
        "reports",
        "results_path",
    }
    assert expected == declared
