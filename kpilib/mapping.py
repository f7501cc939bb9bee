"""YAML mappings: a CRM export in its own shape turned into the contract's raw tables.

A mapping names the export's tables (``sources``: files, database tables or queries) and says how
each contract table is built from them (``tables``): which source column feeds each contract
column, how stage labels translate, which constants fill columns the export lacks, which rows are
deliberately not loaded and why. `mappings/maven_crm.yaml` is the worked example.

Cells are kept as they are (identifiers such as ``007`` stay text); only what the mapping asks for
is changed: dates read with a stated format become dates, numbers written with a decimal comma
become numbers, empty cells get a stated default (in every row, or only in the rows that match
the column's ``default_where``). Every row skipped, every cell filled and every
duplicate removed is counted in a note. The result goes through `kpilib.validation` as usual.

`load_mapping` reads and checks a mapping file; `read_mapped_folder` reads a folder of exported
files through it; `map_tables` and `read_mapped` build (and validate) the tables from sources read
by any means, such as `kpilib.database`.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from kpilib.errors import DataContractError, ParamsError
from kpilib.io import FILE_KINDS, WORKBOOKS, fingerprint, read_raw, read_yaml
from kpilib.schemas import CRM, MODELS, REQUIRED_TABLES, contract_columns, date_columns
from kpilib.validation import Problem, validate_tables

Kind = Literal["date", "number", "text"]


def _as_text(value: Any) -> Any:
    """A YAML number given where text is expected, as it was written (``1.50`` stays "1.50")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text)]
"""Text in a mapping; a number is taken as the text it was written as."""


class _Model(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


def _known_encoding(encoding: str | None) -> str | None:
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"unknown encoding {encoding!r} (e.g. utf-8, cp1251, latin-1)"
            ) from None
    return encoding


def _date_format(date_format: str | None) -> str | None:
    if date_format is not None and "%" not in date_format:
        raise ValueError(f"{date_format!r} is not a strftime format such as '%d.%m.%Y'")
    return date_format


class FileDefaults(_Model):
    """Settings every file source takes unless it sets its own."""

    encoding: str | None = None
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    decimal: Literal[".", ","] | None = None
    thousands: str | None = Field(None, min_length=1, max_length=1)
    date_format: str | None = None

    _encoding = field_validator("encoding")(_known_encoding)
    _format = field_validator("date_format")(_date_format)


class SourceSpec(_Model):
    """One table of the export: a file (relative to the data folder), a database table or query.

    Attributes:
        file: A ``.csv``, ``.txt``, ``.xlsx``, ``.xls`` or ``.parquet`` file.
        table: A database table (``schema.table`` allowed), read by `kpilib.database`.
        query: A database query, read by `kpilib.database`.
        sheet: The sheet of a workbook (None: the first).
        encoding: The text encoding of a CSV file.
        delimiter: The field separator of a CSV file.
        decimal: The decimal mark of numbers written as text, ``.`` or ``,``.
        thousands: The thousands separator of numbers written as text, if any.
        date_format: The strftime format of dates written as text (None: ISO 8601).
    """

    file: Text | None = None
    table: Text | None = None
    query: str | None = None
    sheet: Text | None = None
    encoding: str = "utf-8"
    delimiter: str = Field(",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    thousands: str | None = Field(None, min_length=1, max_length=1)
    date_format: str | None = None

    _encoding = field_validator("encoding")(_known_encoding)
    _format = field_validator("date_format")(_date_format)

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        kinds = [kind for kind in ("file", "table", "query") if getattr(self, kind) is not None]
        if len(kinds) != 1:
            given = ", ".join(kinds) or "none"
            raise ValueError(f"give exactly one of file, table, query (given: {given})")
        problems = []
        if self.file is None:
            file_only = sorted({"sheet", "encoding", "delimiter"} & self.model_fields_set)
            if file_only:
                problems.append(f"{', '.join(file_only)}: only for a file source")
        elif Path(self.file).suffix.lower() not in FILE_KINDS:
            problems.append(f"file {self.file!r} must end in one of {', '.join(FILE_KINDS)}")
        elif self.sheet is not None and Path(self.file).suffix.lower() not in WORKBOOKS:
            problems.append("sheet only applies to an Excel workbook (.xlsx, .xls)")
        if self.thousands is not None and self.thousands == self.decimal:
            problems.append(f"thousands and decimal are both {self.decimal!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def describe(self) -> str:
        """Where the source comes from, for messages: its file, table or ``query``."""
        return self.file or self.table or "query"


class Lookup(_Model):
    """Take column `take` of the row of `source` whose column `on` equals this row's `match`."""

    source: Text
    match: Text
    on: Text
    take: Text


Condition = Text | None | list[Text | None]


class _Translated(_Model):
    """What a column read from a source may do with its values: map them, fill empty cells
    (all of them, or only in the rows where every `default_where` condition holds)."""

    values: dict[Text, Text | None] | None = None
    others: Text | None = None
    default: Text | None = None
    default_where: dict[Text, Condition] | None = Field(None, min_length=1)


class ColumnSpec(_Translated):
    """A contract column read from a column of the table's source."""

    column: Text
    format: str | None = None
    decimal: Literal[".", ","] | None = None

    _format = field_validator("format")(_date_format)


class ConstantSpec(_Model):
    """A contract column the source lacks, the same value in every row."""

    constant: Text


class LookupSpec(_Translated):
    """A contract column taken from another source, matched row by row."""

    lookup: Lookup


def _short_form(value: Any) -> Any:
    return {"column": value} if isinstance(value, str) else value


def _spec_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [f"<{key}>" for key in ("column", "constant", "lookup") if key in value]
        return kinds[0] if len(kinds) == 1 else None
    return {ColumnSpec: "<column>", ConstantSpec: "<constant>", LookupSpec: "<lookup>"}.get(
        type(value)
    )


Spec = Annotated[
    Annotated[ColumnSpec, Tag("<column>")]
    | Annotated[ConstantSpec, Tag("<constant>")]
    | Annotated[LookupSpec, Tag("<lookup>")],
    Discriminator(
        _spec_kind,
        custom_error_type="column_spec",
        custom_error_message=(
            "give a source column name, or a mapping with exactly one of column, constant, lookup"
        ),
    ),
    BeforeValidator(_short_form),
]


class SkipRule(_Model):
    """Rows deliberately not loaded: those where every condition holds.

    A condition is a source column and a value (text; None for an empty cell) or a list of them.
    """

    reason: Text = Field(min_length=1)
    where: dict[Text, Condition] = Field(min_length=1)


class TableSpec(_Model):
    """How one contract table is built from a source."""

    from_: Text = Field(alias="from")
    distinct: bool = Field(False, strict=True)
    skip: list[SkipRule] = Field(default_factory=list)
    columns: dict[str, Spec] = Field(min_length=1)


class Mapping(_Model):
    """A validated mapping; `sources` hold each source's settings with the defaults applied."""

    name: Text = Field(min_length=1)
    description: str | None = None
    defaults: FileDefaults = Field(default_factory=FileDefaults)
    sources: dict[str, SourceSpec] = Field(min_length=1)
    tables: dict[str, TableSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _resolved(self) -> Mapping:
        inherited = self.defaults.model_dump(exclude_none=True)
        sources = {
            name: _inherit(spec, inherited) if spec.file is not None else spec
            for name, spec in self.sources.items()
        }
        resolved = self.model_copy(update={"sources": sources})
        problems = _contract_problems(resolved)
        if problems:
            raise ValueError("\n".join(problems))
        return resolved


def _inherit(spec: SourceSpec, defaults: dict[str, Any]) -> SourceSpec:
    """A file source with the defaults it does not set itself."""
    unset = {key: value for key, value in defaults.items() if key not in spec.model_fields_set}
    return spec.model_copy(update=unset)


@functools.cache
def _column_kind(table: str, column: str) -> Kind:
    """Whether a contract column holds dates, numbers or text."""
    if column in date_columns(table):
        return "date"
    return "number" if "float" in str(MODELS[table].to_schema().columns[column].dtype) else "text"


def _contract_problems(mapping: Mapping) -> list[str]:
    """Table, column and source names the contract or the mapping does not know, and values
    that cannot fit their contract column."""
    problems = [
        f"sources.{name}: thousands and decimal are both {spec.decimal!r} (with the defaults)"
        for name, spec in mapping.sources.items()
        if spec.thousands == spec.decimal
    ]
    problems += _name_problems(mapping.model_dump(by_alias=True, exclude_none=True))
    for table, spec in mapping.tables.items():
        if table not in MODELS:
            continue
        valid = contract_columns(table)
        for column, column_spec in spec.columns.items():
            if column in valid:
                at = f"tables.{table}.columns.{column}"
                problems += [f"{at}.{p}" for p in _spec_problems(table, column, column_spec)]
    return problems


def _name_problems(written: Any) -> list[str]:
    """Table, column and source names the contract or the mapping does not know.

    Read from the mapping as written (a dictionary, whatever else in it is invalid), so that a
    file with a wrong key and a wrong name is told both at once.
    """
    if not isinstance(written, dict) or not isinstance(written.get("tables"), dict):
        return []
    tables: dict[Any, Any] = written["tables"]
    sources = written.get("sources")
    # Without a dictionary of sources (its own problem) no source can be said to be undeclared.
    names = [str(name) for name in sources] if isinstance(sources, dict) else None
    declared = ", ".join(names or [])
    problems = []
    missing = [table for table in REQUIRED_TABLES if table not in tables]
    if missing:
        problems.append(f"tables: the required table(s) {', '.join(missing)} are not mapped")
    for table, spec in tables.items():
        where = f"tables.{table}"
        if not isinstance(table, str):  # the model's own check names it
            continue
        if table not in MODELS:
            problems.append(f"{where}: not a contract table; they are: {', '.join(MODELS)}")
            continue
        if not isinstance(spec, dict):
            continue
        source = spec.get("from")
        if names is not None and isinstance(source, str) and source not in names:
            problems.append(f"{where}.from: source {source!r} is not declared; sources: {declared}")
        columns = spec.get("columns")
        valid = contract_columns(table)
        for column, column_spec in columns.items() if isinstance(columns, dict) else ():
            at = f"{where}.columns.{column}"
            if not isinstance(column, str):
                continue
            if column not in valid:
                problems.append(
                    f"{at}: {table} has no column {column!r}; its columns: {', '.join(valid)}"
                )
                continue
            lookup = column_spec.get("lookup") if isinstance(column_spec, dict) else None
            source = lookup.get("source") if isinstance(lookup, dict) else None
            if names is not None and isinstance(source, str) and source not in names:
                problems.append(
                    f"{at}.lookup.source: source {source!r} is not declared; sources: {declared}"
                )
    return problems


def _spec_problems(
    table: str, column: str, spec: ColumnSpec | ConstantSpec | LookupSpec
) -> list[str]:
    kind = _column_kind(table, column)
    problems = []
    if isinstance(spec, ColumnSpec) and spec.format is not None and kind != "date":
        problems.append(f"format: {table}.{column} is {kind}, not a date")
    if isinstance(spec, ColumnSpec) and spec.decimal is not None and kind != "number":
        problems.append(f"decimal: {table}.{column} is {kind}, not a number")
    if not isinstance(spec, ConstantSpec) and spec.others is not None and spec.values is None:
        problems.append("others: only applies together with values")
    if not isinstance(spec, ConstantSpec) and spec.default_where and spec.default is None:
        problems.append("default_where: only applies together with default")
    given = {"constant": spec.constant} if isinstance(spec, ConstantSpec) else {}
    if not isinstance(spec, ConstantSpec) and spec.default is not None:
        given["default"] = spec.default
    for key, value in given.items():
        if not _fits(kind, value):
            shape = "an ISO date (YYYY-MM-DD)" if kind == "date" else "a number such as 0 or 1.5"
            problems.append(f"{key}: {value!r} is not {shape}, as {table}.{column} needs")
    return problems


def _fits(kind: Kind, value: str) -> bool:
    """Whether a constant written in a mapping can be read as the contract reads the column."""
    if kind == "text":
        return True
    if kind == "number":
        return pd.notna(pd.to_numeric(pd.Series([value]), errors="coerce")[0])
    return pd.notna(pd.to_datetime(pd.Series([value]), format="ISO8601", errors="coerce")[0])


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file.

    Raises:
        ParamsError: Naming the file and every bad key: unknown keys, contract tables and
            columns that do not exist, sources used but not declared, invalid settings.
    """
    path = Path(path)
    written = read_yaml(path)
    try:
        return Mapping.model_validate(written)
    except ValidationError as exc:
        lines = [line for error in exc.errors() for line in _error_lines(error)]
        # Names are checked once the whole file parses; tell them now too, not in a second round.
        lines += [f"- {p}" for p in _name_problems(written) if f"- {p}" not in lines]
        raise ParamsError(
            f"Mapping {path} is invalid ({len(lines)} problem(s)):\n" + "\n".join(lines)
        ) from None


def _error_lines(error: Any) -> list[str]:
    where = ".".join(str(part) for part in error["loc"] if not str(part).startswith("<"))
    if error["type"] == "value_error" and not where:
        return [f"- {line}" for line in error["ctx"]["error"].args[0].splitlines()]
    message = {
        "extra_forbidden": "unknown key",
        "missing": "required key is missing",
    }.get(error["type"], error["msg"].removeprefix("Value error, "))
    return [f"- {where or '(top level)'}: {message}"]


# --- building the tables ---------------------------------------------------------------------

Fetch = Callable[[str, SourceSpec], pd.DataFrame]


@dataclasses.dataclass(frozen=True)
class _Built:
    tables: dict[str, pd.DataFrame]
    notes: tuple[str, ...]
    problems: tuple[Problem, ...]


def map_tables(mapping: Mapping, fetch: Fetch) -> tuple[dict[str, pd.DataFrame], tuple[str, ...]]:
    """Build every mapped contract table from its sources.

    Args:
        mapping: The mapping.
        fetch: Reads a source, given its name and settings (`read_file_source` for files).

    Returns:
        The contract's raw tables, each indexed by its rows' positions in the source (0 is the
        first row after the header), and notes on every row skipped, cell filled and duplicate
        removed.

    Raises:
        DataContractError: Listing every problem at once: sources that cannot be read, source
            columns that do not exist, dates not in their format, numbers not readable with
            their decimal mark, lookups without a match. Rows are numbered as in the source
            (1 = the first row after the header).
    """
    built = _build(mapping, fetch)
    if built.problems:
        raise DataContractError(
            f"Mapping {mapping.name} cannot build the contract's tables "
            f"({len(built.problems)} problem(s); rows are numbered as in the source, from 1 "
            "after the header):\n" + "\n".join(p.describe() for p in built.problems)
        )
    return built.tables, built.notes


def _used_sources(mapping: Mapping) -> list[str]:
    used = [spec.from_ for spec in mapping.tables.values()]
    used += [
        column.lookup.source
        for spec in mapping.tables.values()
        for column in spec.columns.values()
        if isinstance(column, LookupSpec)
    ]
    return list(dict.fromkeys(used))


def columns_read(mapping: Mapping) -> dict[str, set[str]]:
    """The source columns the mapping reads, by source: its columns, skip rules and lookups."""
    read: dict[str, set[str]] = {}
    for spec in mapping.tables.values():
        own = read.setdefault(spec.from_, set())
        own.update(column for rule in spec.skip for column in rule.where)
        for column in spec.columns.values():
            if not isinstance(column, ConstantSpec):
                own.update(column.default_where or {})
            if isinstance(column, ColumnSpec):
                own.add(column.column)
            elif isinstance(column, LookupSpec):
                own.add(column.lookup.match)
                read.setdefault(column.lookup.source, set()).update(
                    {column.lookup.on, column.lookup.take}
                )
    return read


def _build(mapping: Mapping, fetch: Fetch) -> _Built:
    fetched: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for name in _used_sources(mapping):
        try:
            fetched[name] = fetch(name, mapping.sources[name]).reset_index(drop=True)
        except DataContractError as exc:
            problems.append(Problem(f"source '{name}'", "", str(exc), (), ()))
    tables, notes = {}, []
    for table, spec in mapping.tables.items():
        if spec.from_ not in fetched:
            continue
        builder = _TableBuilder(mapping, table, fetched)
        tables[table] = builder.build(spec)
        notes += builder.notes
        problems += builder.problems
    return _Built(tables, tuple(notes), tuple(problems))


def _rows(index: pd.Index) -> tuple[int, ...]:
    return tuple(int(i) + 1 for i in index)


def _shown(values: pd.Series) -> tuple[str, ...]:
    return tuple(repr(str(v))[:60] for v in values)


class _TableBuilder:
    """Builds one contract table, collecting its problems and notes."""

    def __init__(self, mapping: Mapping, table: str, fetched: dict[str, pd.DataFrame]) -> None:
        self.mapping, self.table, self.fetched = mapping, table, fetched
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def build(self, spec: TableSpec) -> pd.DataFrame:
        source = self.fetched[spec.from_]
        rows = source.loc[self._kept(spec, source)]
        columns = {
            column: self._column(column, column_spec, spec.from_, rows)
            for column, column_spec in spec.columns.items()
        }
        order = [column for column in contract_columns(self.table) if column in columns]
        frame = pd.DataFrame({column: columns[column] for column in order}, index=rows.index)
        if spec.distinct:
            repeated = frame.duplicated()
            if repeated.any():
                self.notes.append(
                    f"{self.table}: {int(repeated.sum())} duplicate row(s) removed (distinct)."
                )
            frame = frame.loc[~repeated]
        return frame

    def _missing(self, column: str, name: str, wanted: str, context: str = "") -> bool:
        """Whether source `name` lacks column `wanted` (a problem of contract `column`)."""
        source = self.fetched[name]
        if wanted in source:
            return False
        spec = self.mapping.sources[name]
        self.problems.append(
            Problem(
                self.table,
                column,
                f"{context}source '{name}' ({spec.describe()}) has no column '{wanted}'; "
                f"its columns: {', '.join(map(str, source.columns))}",
                (),
                (),
            )
        )
        return True

    def _kept(self, spec: TableSpec, source: pd.DataFrame) -> pd.Series:
        kept = pd.Series(True, index=source.index)
        for rule in spec.skip:
            context = f"skip rule '{rule.reason}': "
            if any([self._missing("", spec.from_, c, context) for c in rule.where]):
                continue
            matched = kept.copy()
            for column, condition in rule.where.items():
                matched &= _holds(source[column], condition)
            if matched.any():
                self.notes.append(
                    f"{self.table}: {int(matched.sum())} row(s) skipped: {rule.reason}"
                )
            kept &= ~matched
        return kept

    def _column(
        self,
        column: str,
        spec: ColumnSpec | ConstantSpec | LookupSpec,
        name: str,
        rows: pd.DataFrame,
    ) -> pd.Series:
        if isinstance(spec, ConstantSpec):
            return pd.Series(spec.constant, index=rows.index, dtype="str")
        if isinstance(spec, LookupSpec):
            name, read = spec.lookup.source, spec.lookup.take
            values = self._looked_up(column, spec.lookup, rows)
            date_format, decimal = None, None
        elif self._missing(column, name, spec.column):
            return pd.Series(pd.NA, index=rows.index, dtype="str")
        else:
            read, values = spec.column, rows[spec.column]
            date_format, decimal = spec.format, spec.decimal
        source = self.mapping.sources[name]
        where = f"source '{name}' column '{read}'"
        if spec.values is not None:
            values = self._mapped(column, values, spec.values, spec.others)
        kind = _column_kind(self.table, column)
        if kind == "date":
            values = self._dates(column, values, date_format or source.date_format, where)
        elif kind == "number" and _is_workbook(source):
            # A workbook's number cells are numbers, read as plain text ("1054.5"): separators
            # meant for a text export would misread them, and a text cell is refused instead.
            values = self._numbers(column, values, ".", None, where)
        elif kind == "number":
            decimal = decimal or source.decimal
            values = self._numbers(column, values, decimal, source.thousands, where)
        if spec.default is not None:
            values = self._filled(column, values, spec.default, spec.default_where, rows)
        return values

    def _looked_up(self, column: str, lookup: Lookup, rows: pd.DataFrame) -> pd.Series:
        other = self.fetched.get(lookup.source)
        empty = pd.Series(pd.NA, index=rows.index, dtype="str")
        if other is None:  # the source could not be read: its problem is reported already
            return empty
        frm = self.mapping.tables[self.table].from_
        absent = [self._missing(column, frm, lookup.match)] + [
            self._missing(column, lookup.source, c) for c in (lookup.on, lookup.take)
        ]
        if any(absent):
            return empty
        keys = other[lookup.on]
        repeated = keys.notna() & keys.duplicated(keep=False)
        if repeated.any():
            self.problems.append(
                Problem(
                    self.table,
                    column,
                    f"lookup source '{lookup.source}' has more than one row for a value of "
                    f"'{lookup.on}' (rows of '{lookup.source}')",
                    _rows(keys.index[repeated]),
                    _shown(keys[repeated]),
                )
            )
        table = other.loc[keys.notna()].drop_duplicates(lookup.on).set_index(lookup.on)
        match = rows[lookup.match]
        unmatched = match.notna() & ~match.isin(table.index)
        if unmatched.any():
            self.problems.append(
                Problem(
                    self.table,
                    column,
                    f"no row of source '{lookup.source}' has this '{lookup.match}' in "
                    f"'{lookup.on}' (source '{frm}' rows)",
                    _rows(match.index[unmatched]),
                    _shown(match[unmatched]),
                )
            )
        return match.map(table[lookup.take])

    def _mapped(
        self, column: str, values: pd.Series, value_map: dict[str, str | None], others: str | None
    ) -> pd.Series:
        text = values.where(values.isna(), values.astype("str"))
        known = text.isin(list(value_map))
        mapped = text.map(value_map).where(known, text)
        emptied = known & text.map(value_map).isna()
        if emptied.any():
            self.notes.append(
                f"{self.table}.{column}: {int(emptied.sum())} value(s) emptied by the value map."
            )
        if others is not None:
            replaced = text.notna() & ~known
            if replaced.any():
                self.notes.append(
                    f"{self.table}.{column}: {int(replaced.sum())} value(s) not in the value "
                    f"map set to {others!r}."
                )
            mapped = mapped.mask(replaced, others)
        return mapped.astype("str")

    def _dates(
        self, column: str, values: pd.Series, date_format: str | None, where: str
    ) -> pd.Series:
        if date_format is None or pd.api.types.is_datetime64_any_dtype(values):
            return values
        text = values.astype("str").str.strip().where(values.notna())
        text = text.where(text != "")
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        bad = text.notna() & parsed.isna()
        self._refuse(column, values, bad, f"does not match the date format '{date_format}'", where)
        return parsed

    def _numbers(
        self, column: str, values: pd.Series, decimal: str, thousands: str | None, where: str
    ) -> pd.Series:
        plain = decimal == "." and thousands is None
        if plain or pd.api.types.is_numeric_dtype(values):
            return values
        text = values.astype("str").str.strip().where(values.notna())
        if thousands is not None:
            separators = [thousands, "\u00a0", "\u202f"] if thousands == " " else [thousands]
            for separator in separators:
                text = text.str.replace(separator, "", regex=False)
        if decimal == ",":
            # "1.234" under a decimal comma is a thousands mark, never one and a bit: refuse it.
            text = text.where(~text.str.contains(".", regex=False, na=False), "not a number")
            text = text.str.replace(",", ".", regex=False)
        parsed = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = values.notna() & parsed.isna()
        setting = f"decimal '{decimal}'" + (f", thousands '{thousands}'" if thousands else "")
        self._refuse(column, values, bad, f"cannot be read as a number with {setting}", where)
        return parsed

    def _refuse(
        self, column: str, values: pd.Series, bad: pd.Series, rule: str, where: str
    ) -> None:
        """A problem naming the `bad` cells of `column`, when there are any."""
        if bad.any():
            self.problems.append(
                Problem(
                    self.table,
                    column,
                    f"{rule} ({where})",
                    _rows(values.index[bad]),
                    _shown(values[bad]),
                )
            )

    def _filled(
        self,
        column: str,
        values: pd.Series,
        default: str,
        where: dict[str, Any] | None,
        rows: pd.DataFrame,
    ) -> pd.Series:
        empty, only = values.isna(), ""
        if where:
            frm = self.mapping.tables[self.table].from_
            if any([self._missing(column, frm, c, "default_where: ") for c in where]):
                return values
            for source_column, condition in where.items():
                empty &= _holds(rows[source_column], condition)
            only = " where " + " and ".join(
                f"{c} is {_condition_text(condition)}" for c, condition in where.items()
            )
        if not empty.any():
            return values
        self.notes.append(
            f"{self.table}.{column}: {int(empty.sum())} empty cell(s) filled with {default!r}"
            f"{only}."
        )
        filled = _fill_all(values, default, _column_kind(self.table, column))
        return filled if not where else values.where(~empty, filled)


def _fill_all(values: pd.Series, default: str, kind: Kind) -> pd.Series:
    """Every empty cell filled with the default, read as the contract column reads it (a text
    column read from a numeric source takes the default as text)."""
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(values):
        return values.fillna(pd.Timestamp(default))
    if kind == "number" and pd.api.types.is_numeric_dtype(values):
        return values.fillna(float(default))
    return values.astype("object").where(values.notna(), default)


def _condition_text(condition: Any) -> str:
    """A condition as a note says it: ``'Engaging' or 'Prospecting'``, ``empty``."""
    wanted = condition if isinstance(condition, list) else [condition]
    return " or ".join("empty" if value is None else repr(value) for value in wanted)


def _holds(values: pd.Series, condition: Any) -> pd.Series:
    """Row-wise: the cell is one of the condition's values (None: the cell is empty)."""
    wanted = condition if isinstance(condition, list) else [condition]
    text = values.where(values.isna(), values.astype("str"))
    holds = text.isin([value for value in wanted if value is not None])
    if None in wanted:
        holds |= values.isna()
    return holds


# --- reading a folder ------------------------------------------------------------------------


def read_file_source(folder: Path, spec: SourceSpec) -> pd.DataFrame:
    """Read a file source of a mapping as text, with its encoding, delimiter and sheet.

    Raises:
        ParamsError: `spec` is not a file source.
        DataContractError: The file is missing, cannot be read or is not valid text in its
            encoding (the message suggests the ``encoding`` key).
    """
    if spec.file is None:
        raise ParamsError(f"A folder is read from files; {spec.describe()} is a database source.")
    path = Path(folder) / spec.file
    if not path.is_file():
        raise DataContractError(f"{path} is missing.")
    return read_raw(path, encoding=spec.encoding, delimiter=spec.delimiter, sheet=spec.sheet)


def read_mapped_folder(folder: Path | str, mapping: Mapping, mapping_name: str = "") -> CRM:
    """Read a folder of exported files through a mapping, and validate the result.

    Args:
        folder: The folder the mapping's files are relative to.
        mapping: The mapping (every source a file).
        mapping_name: How to name the mapping in the source's description (default: its name).

    Returns:
        The validated tables; the mapping's notes come first in ``crm.notes``. The fingerprint
        covers the source files' bytes and the mapping, so other rules give another fingerprint.

    Raises:
        ParamsError: The mapping names database sources.
        DataContractError: Every problem of the mapping and of the contract, at once.
    """
    folder = Path(folder)
    remote = [
        f"{name} ({spec.describe()})" for name, spec in mapping.sources.items() if not spec.file
    ]
    if remote:
        raise ParamsError(
            f"Mapping {mapping_name or mapping.name} names database sources ({', '.join(remote)}); "
            "a folder is read from files only."
        )
    if not folder.is_dir():
        raise DataContractError(f"Data source {folder} is not a folder.")
    source = f"{folder} (mapping {mapping_name or mapping.name})"
    return read_mapped(
        mapping,
        lambda name, spec: read_file_source(folder, spec),
        source=source,
        digest=_digest(folder, mapping),
    )


def read_mapped(mapping: Mapping, fetch: Fetch, *, source: str, digest: str = "") -> CRM:
    """Build the contract's tables through a mapping and validate them: `map_tables`, then
    `kpilib.validation.validate_tables`, with the problems of both in one error.

    Args:
        mapping: The mapping.
        fetch: Reads a source, given its name and settings.
        source: Where the data came from, for messages and provenance.
        digest: The data's fingerprint.

    Returns:
        The validated tables; the mapping's notes come first in ``crm.notes``.

    Raises:
        DataContractError: Every problem of the mapping and of the contract, at once; a
            contract problem of a column whose mapping already failed is not repeated.
    """
    built = _build(mapping, fetch)
    try:
        crm = validate_tables(built.tables, source=source, digest=digest)
    except DataContractError as exc:
        raise _combined(source, built, exc) from None
    if built.problems:
        raise _combined(source, built, None)
    return dataclasses.replace(crm, notes=built.notes + crm.notes)


def _digest(folder: Path, mapping: Mapping) -> str:
    """A fingerprint of the mapping and the bytes of the files it reads (those present)."""
    files = {name: folder / str(mapping.sources[name].file) for name in _used_sources(mapping)}
    present = {name: path for name, path in files.items() if path.is_file()}
    digest = hashlib.sha256(mapping.model_dump_json(by_alias=True).encode())
    digest.update(fingerprint(present).encode())
    return digest.hexdigest()[:16]


def _combined(source: str, built: _Built, contract: DataContractError | None) -> DataContractError:
    """One error listing the mapping's problems and the contract's, without repeating a column
    the mapping already reported."""
    lines = [p.describe() for p in built.problems]
    if contract is not None:
        text = str(contract).splitlines()
        told = tuple(f"- {p.table}.{p.column}:" for p in built.problems if p.column)
        found = text[1:] if len(text) > 1 else [f"- {text[0]}"]
        # A value the mapping could not read reaches the contract empty (or unread): only
        # those lines would repeat the mapping's; the column's other rules still speak.
        repeats = (": value is required:", ": cannot be read as ")
        found = [
            line
            for line in found
            if not (line.startswith(told) and any(words in line for words in repeats))
        ]
        lines += found
    return DataContractError(
        f"Data source {source} breaks the data contract ({len(lines)} problem(s); rows are "
        "numbered from 1 after the header of the source file, rows left out counted):\n"
        + "\n".join(lines)
    )


def _is_workbook(source: SourceSpec) -> bool:
    return source.file is not None and Path(source.file).suffix.lower() in WORKBOOKS
