"""A PostgreSQL server for the tests: 127.0.0.1:5432, database ``test``, trust authentication.

Tests that need it are marked `server`; they are skipped, saying why, where no server answers.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from kpilib.database import engine_for
from kpilib.testing import scratch_schema

SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def _server_problem() -> str | None:
    engine = engine_for(SERVER + "?connect_timeout=3")
    try:
        with engine.connect():
            return None
    except sa_exc.DBAPIError as error:
        return " ".join(str(error.orig).split())
    finally:
        engine.dispose()


SERVER_PROBLEM = _server_problem()
server = pytest.mark.skipif(
    SERVER_PROBLEM is not None,
    reason=f"no PostgreSQL server on 127.0.0.1:5432 (database test): {SERVER_PROBLEM}",
)


def server_schema() -> AbstractContextManager[str]:
    """A schema of its own on the server, dropped with everything in it afterwards."""
    return scratch_schema(SERVER)


def run_sql(url: str, *statements: str) -> None:
    """Run fixed SQL statements (test set-up) in one transaction."""
    engine = engine_for(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()
