"""The USAspending download v2 profile's vocabulary (seed 004), without I/O: the award and
transaction download columns (names and titles of the public USAspending download, from
usaspending-api's ``download_column_historical_lookups``, plus the seed's own examples
``assistance_type`` and ``awarding_agency``: the agency's name and code, "Department of
Energy (089)"), and the translation of the parts of
a Search v2 filter object that fit our typed filters.

Supported filter parts, and what each becomes (every part a list, OR inside a part, AND across
parts, as in Search v2):

* ``time_period``: ``[{"start_date", "end_date"}]``; a transaction's ``action_date`` in the
  period; an award whose actions overlap it (``award_base_action_date <= end_date`` and
  ``award_latest_action_date >= start_date``);
* ``award_type_codes``: ``["A", "B", …]`` → ``award_type_code`` in the list;
* ``agencies``: ``[{"type": "awarding"|"funding", "tier": "toptier"|"subtier", "name"}]`` →
  ``{type}_agency_name`` (toptier) or ``{type}_sub_agency_name`` (subtier) equal to ``name``;
* ``recipient_search_text``: ``["text"]`` → ``recipient_name`` contains it (any case), or
  ``recipient_uei`` equals it;
* ``award_amounts``: ``[{"lower_bound", "upper_bound"}]`` (either optional) → the award's
  ``total_obligated_amount`` (awards) or the transaction's ``federal_action_obligation``
  within the bounds;
* ``keywords``: ``["text"]`` → the award's or the transaction's description contains it (any
  case);
* ``naics_codes``: ``["541511"]`` (or ``{"require": [...]}``) → ``naics_code`` in the list;
* ``psc_codes``: ``["R425"]`` (or ``{"require": [...]}``) → ``product_or_service_code`` in the
  list;
* ``program_numbers``: ``["10.001"]`` → ``cfda_number`` in the list.

Any other part (``place_of_performance_locations``, ``recipient_locations``, ``tas_codes``,
``def_codes``, …) is refused with :class:`InvalidFilter` naming it, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from app.domain.errors import InvalidFilter, UnknownColumn

Kind = Literal["awards", "transactions"]


@dataclass(frozen=True, slots=True)
class DownloadColumn:
    value: str  # the CSV header and the name requests use
    title: str  # shown by GET /v2/download/columns
    type: str  # the managed dataset's column type (dataset-fill vocabulary)


def _cols(*rows: tuple[str, str, str]) -> tuple[DownloadColumn, ...]:
    return tuple(DownloadColumn(*row) for row in rows)


# Columns both downloads have, in the same place relative to their neighbours.
AGENCY_AND_RECIPIENT = (
    ("awarding_agency", "Awarding Agency", "string"),
    ("awarding_agency_code", "Awarding Agency Code", "string"),
    ("awarding_agency_name", "Awarding Agency Name", "string"),
    ("awarding_sub_agency_code", "Awarding Sub Agency Code", "string"),
    ("awarding_sub_agency_name", "Awarding Sub Agency Name", "string"),
    ("funding_agency_code", "Funding Agency Code", "string"),
    ("funding_agency_name", "Funding Agency Name", "string"),
    ("funding_sub_agency_name", "Funding Sub Agency Name", "string"),
    ("recipient_uei", "Recipient UEI", "string"),
    ("recipient_name", "Recipient Name", "string"),
)  # fmt: skip
AWARD_COLUMNS = _cols(
    ("award_id_piid", "Award ID (PIID)", "string"),
    ("award_id_fain", "Award ID (FAIN)", "string"),
    ("parent_award_id_piid", "Parent Award ID (PIID)", "string"),
    ("award_type_code", "Award Type Code", "string"),
    ("award_type", "Award Type", "string"),
    ("assistance_type", "Assistance Type", "string"),
    ("total_obligated_amount", "Total Obligated Amount", "number"),
    ("current_total_value_of_award", "Current Total Value of Award", "number"),
    ("potential_total_value_of_award", "Potential Total Value of Award", "number"),
    ("award_base_action_date", "Award Base Action Date", "date"),
    ("award_latest_action_date", "Award Latest Action Date", "date"),
    ("period_of_performance_start_date", "Period of Performance Start Date", "date"),
    ("period_of_performance_current_end_date", "Period of Performance Current End Date", "date"),
    *AGENCY_AND_RECIPIENT,
    ("recipient_parent_name", "Recipient Parent Name", "string"),
    ("recipient_country_code", "Recipient Country Code", "string"),
    ("recipient_state_code", "Recipient State Code", "string"),
    ("recipient_city_name", "Recipient City Name", "string"),
    ("primary_place_of_performance_state_code", "Primary Place of Performance State Code",
     "string"),
    ("award_description", "Award Description", "string"),
    ("naics_code", "NAICS Code", "string"),
    ("naics_description", "NAICS Description", "string"),
    ("product_or_service_code", "Product or Service Code (PSC)", "string"),
    ("cfda_number", "CFDA Number", "string"),
)  # fmt: skip
TRANSACTION_COLUMNS = _cols(
    ("award_id_piid", "Award ID (PIID)", "string"),
    ("award_id_fain", "Award ID (FAIN)", "string"),
    ("modification_number", "Modification Number", "string"),
    ("transaction_number", "Transaction Number", "string"),
    ("federal_action_obligation", "Federal Action Obligation", "number"),
    ("total_dollars_obligated", "Total Dollars Obligated", "number"),
    ("action_date", "Action Date", "date"),
    ("action_type_code", "Action Type Code", "string"),
    ("action_type", "Action Type", "string"),
    ("award_type_code", "Award Type Code", "string"),
    ("award_type", "Award Type", "string"),
    ("assistance_type", "Assistance Type", "string"),
    *AGENCY_AND_RECIPIENT,
    ("recipient_country_code", "Recipient Country Code", "string"),
    ("recipient_state_code", "Recipient State Code", "string"),
    ("recipient_city_name", "Recipient City Name", "string"),
    ("primary_place_of_performance_state_code", "Primary Place of Performance State Code",
     "string"),
    ("transaction_description", "Transaction Description", "string"),
    ("naics_code", "NAICS Code", "string"),
    ("product_or_service_code", "Product or Service Code (PSC)", "string"),
    ("cfda_number", "CFDA Number", "string"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Download:
    kind: Kind  # the path: /v2/download/{kind}
    type_name: str  # ?type= of /v2/download/columns
    dataset_type: str  # the catalog type that generates it
    source: str  # the managed dataset it reads
    columns: tuple[DownloadColumn, ...]
    amount: str  # award_amounts applies to this column
    description: str  # keywords search this column

    def column_names(self) -> list[str]:
        return [c.value for c in self.columns]


DOWNLOADS: dict[Kind, Download] = {
    "awards": Download("awards", "award", "usaspending-awards", "awards", AWARD_COLUMNS,
                       "total_obligated_amount", "award_description"),
    "transactions": Download("transactions", "transaction", "usaspending-transactions",
                             "transactions", TRANSACTION_COLUMNS, "federal_action_obligation",
                             "transaction_description"),
}  # fmt: skip
BY_TYPE = {d.type_name: d for d in DOWNLOADS.values()}
SUPPORTED = (
    "time_period", "award_type_codes", "agencies", "recipient_search_text", "award_amounts",
    "keywords", "naics_codes", "psc_codes", "program_numbers",
)  # fmt: skip

Node = dict[str, Any]


def check_columns(download: Download, columns: Any) -> list[str] | None:
    """The requested columns in order (``None`` = all), or :class:`UnknownColumn` naming the
    ones the download does not have."""
    if columns is None or columns == []:
        return None
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidFilter("columns must be a list of column names")
    known = set(download.column_names())
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise UnknownColumn(
            f"unknown {download.type_name} columns {unknown[:10]}; "
            f"GET /v2/download/columns?type={download.type_name} lists them"
        )
    return list(columns)


def _list(filters: dict[str, Any], key: str, item: type | tuple[type, ...]) -> list[Any]:
    value = filters[key]
    if isinstance(value, dict) and key in ("naics_codes", "psc_codes"):
        if set(value) - {"require"}:
            raise InvalidFilter(
                f"filters.{key}: only 'require' is supported ({sorted(set(value) - {'require'})})"
            )
        value = value.get("require", [])
    if not isinstance(value, list) or not value:
        raise InvalidFilter(f"filters.{key} must be a non-empty list")
    for i, entry in enumerate(value):
        if not isinstance(entry, item):
            raise InvalidFilter(f"filters.{key}[{i}] has the wrong type")
    return value


def _any(nodes: list[Node]) -> Node:
    return nodes[0] if len(nodes) == 1 else {"or": nodes}


def _leaf(column: str, op: str, value: Any = None) -> Node:
    node: Node = {"column": column, "op": op}
    if value is not None:
        node["value"] = value
    return node


def _time_period(download: Download, periods: list[Any]) -> Node:
    parts = []
    for i, period in enumerate(periods):
        start, end = period.get("start_date"), period.get("end_date")
        if not isinstance(start, str) or not isinstance(end, str):
            raise InvalidFilter(f"filters.time_period[{i}] needs start_date and end_date")
        if download.kind == "transactions":
            parts.append(_leaf("action_date", "between", [start, end]))
        else:
            parts.append({"and": [_leaf("award_base_action_date", "<=", end),
                                  _leaf("award_latest_action_date", ">=", start)]})  # fmt: skip
    return _any(parts)


def _agencies(agencies: list[Any]) -> Node:
    parts = []
    for i, agency in enumerate(agencies):
        kind, tier, name = agency.get("type"), agency.get("tier"), agency.get("name")
        if kind not in ("awarding", "funding") or tier not in ("toptier", "subtier"):
            raise InvalidFilter(
                f"filters.agencies[{i}]: type must be awarding or funding, tier toptier or subtier"
            )
        if not isinstance(name, str) or not name:
            raise InvalidFilter(f"filters.agencies[{i}].name must be an agency name")
        column = f"{kind}_agency_name" if tier == "toptier" else f"{kind}_sub_agency_name"
        parts.append(_leaf(column, "=", name))
    return _any(parts)


def _amounts(download: Download, bounds: list[Any]) -> Node:
    parts = []
    for i, bound in enumerate(bounds):
        tests = []
        for key, op in (("lower_bound", ">="), ("upper_bound", "<=")):
            value = bound.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidFilter(f"filters.award_amounts[{i}].{key} must be a number")
            tests.append(_leaf(download.amount, op, value))
        if not tests:
            raise InvalidFilter(f"filters.award_amounts[{i}] needs lower_bound or upper_bound")
        parts.append(tests[0] if len(tests) == 1 else {"and": tests})
    return _any(parts)


def translate_filters(download: Download, filters: Any) -> Node | None:
    """A Search v2 filter object as our typed filter (``None``: every row)."""
    if not isinstance(filters, dict):
        raise InvalidFilter("filters must be a JSON object (a Search v2 filter object)")
    unsupported = sorted(set(filters) - set(SUPPORTED))
    if unsupported:
        raise InvalidFilter(
            f"filters.{unsupported[0]} is not supported by this server "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    parts: list[Node] = []
    if "time_period" in filters:
        parts.append(_time_period(download, _list(filters, "time_period", dict)))
    if "award_type_codes" in filters:
        codes = _list(filters, "award_type_codes", str)
        parts.append(_leaf("award_type_code", "in", codes))
    if "agencies" in filters:
        parts.append(_agencies(_list(filters, "agencies", dict)))
    if "recipient_search_text" in filters:
        texts = _list(filters, "recipient_search_text", str)
        parts.append(_any([
            node for text in texts
            for node in (_leaf("recipient_name", "ilike", f"%{text}%"),
                         _leaf("recipient_uei", "=", text.upper()))
        ]))  # fmt: skip
    if "award_amounts" in filters:
        parts.append(_amounts(download, _list(filters, "award_amounts", dict)))
    if "keywords" in filters:
        words = _list(filters, "keywords", str)
        parts.append(_any([_leaf(download.description, "ilike", f"%{w}%") for w in words]))
    for key, column in (("naics_codes", "naics_code"), ("psc_codes", "product_or_service_code"),
                        ("program_numbers", "cfda_number")):  # fmt: skip
        if key in filters:
            parts.append(_leaf(column, "in", _list(filters, key, str)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}
