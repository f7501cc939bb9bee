"""``python -m kpilib``: the same as the ``kpi`` command."""

from kpilib.cli import entry

entry()
