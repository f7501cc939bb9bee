"""``python -m kpilib``: the same as the ``kpi`` command."""

import sys

from kpilib.cli import main

sys.exit(main())
