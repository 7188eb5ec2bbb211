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
* ``naics_codes``: ``["54", "5415", "541511"]`` or ``{"require": [...], "exclude": [...]}``
  (codes of 2, 4 or 6 digits) and ``psc_codes``: ``["R4", "R425"]`` or ``{"require": [["Service",
  "R", "R4"], ["Product"]], "exclude": [...]}`` (codes of 1-4 characters, paths that may start
  with a tier-1 name: Research and Development = ``A…``, Service = ``B…``-``Z…``, Product =
  ``0…``-``9…``): the hierarchical filters of usaspending-api (``HierarchicalFilter``). A code
  shorter than a leaf is a prefix; a row's ``naics_code`` / ``product_or_service_code`` is decided
  by the longest listed code it starts with: kept under a required code, dropped under an
  excluded one, and, under none, kept only when nothing is required;
* ``program_numbers``: ``["10.001"]`` → ``cfda_number`` in the list;
* ``recipient_locations``: ``[{"country": "USA", "state": "VA", "city": "Arlington"}]`` →
  ``recipient_country_code``, ``recipient_state_code`` equal, ``recipient_city_name`` equal in
  any case; ``recipient_scope``: ``"domestic"`` (country USA) or ``"foreign"``;
* ``place_of_performance_locations``: ``[{"country": "USA", "state": "VA"}]`` →
  ``primary_place_of_performance_state_code`` (the downloads carry no other place-of-
  performance field, so a location naming another country, or a county, district, city or
  zip, is refused).

Any other part or key (``tas_codes``, ``def_codes``, a location's ``county`` …) is refused with
:class:`InvalidFilter` naming it, never ignored.
"""

from __future__ import annotations

import re
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
# The location columns both downloads have (what the location filters compare).
LOCATIONS = (
    ("recipient_country_code", "Recipient Country Code", "string"),
    ("recipient_state_code", "Recipient State Code", "string"),
    ("recipient_city_name", "Recipient City Name", "string"),
    ("primary_place_of_performance_state_code", "Primary Place of Performance State Code",
     "string"),
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
    *LOCATIONS,
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
    *LOCATIONS,
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
    "keywords", "naics_codes", "psc_codes", "program_numbers", "recipient_locations",
    "recipient_scope", "place_of_performance_locations",
)  # fmt: skip
# usaspending-api's PSC_GROUPS: a tier-1 name stands for the codes starting with these.
PSC_GROUPS = {
    "Research and Development": ("A",),
    "Service": tuple("BCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "Product": tuple("0123456789"),
}
NAICS_CODE = re.compile(r"\d{2}|\d{4}|\d{6}")
PSC_CODE = re.compile(r"[A-Z0-9]{1,4}")

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


def _hierarchy(column: str, require: list[str], exclude: list[str]) -> Node:
    """usaspending-api's hierarchical code filter: the longest listed code a row's code starts
    with decides (see module doc)."""
    listed = set(require) | set(exclude)

    def under(code: str) -> Node:  # rows whose longest listed prefix is ``code``
        node = _leaf(column, "like", code + "%")
        deeper = sorted(d for d in listed if d != code and d.startswith(code))
        if not deeper:
            return node
        return {"and": [node, {"not": _any([_leaf(column, "like", d + "%") for d in deeper])}]}

    if require:
        kept = [under(code) for code in sorted(set(require) - set(exclude))]
        if not kept:  # every required code is also excluded: nothing is kept
            return {"and": [_leaf(column, "is_null"), _leaf(column, "not_null")]}
        return _any(kept)
    dropped = _any([_leaf(column, "like", code + "%") for code in sorted(set(exclude))])
    return {"or": [_leaf(column, "is_null"), {"not": dropped}]}


def _require_exclude(filters: dict[str, Any], key: str) -> tuple[list[Any], list[Any]]:
    value = filters[key]
    if isinstance(value, list):  # the legacy form: the codes required
        if not value:
            raise InvalidFilter(f"filters.{key} must be a non-empty list")
        return value, []
    if not isinstance(value, dict) or set(value) - {"require", "exclude"}:
        raise InvalidFilter(
            f"filters.{key} must be a list or {{'require': [...], 'exclude': [...]}}"
        )
    require, exclude = value.get("require") or [], value.get("exclude") or []
    if not isinstance(require, list) or not isinstance(exclude, list) or not require + exclude:
        raise InvalidFilter(f"filters.{key}: require and exclude must be lists, not both empty")
    return require, exclude


def _naics(filters: dict[str, Any]) -> Node:
    require, exclude = _require_exclude(filters, "naics_codes")
    codes = [str(c) if isinstance(c, int) and not isinstance(c, bool) else c
             for c in require + exclude]  # fmt: skip
    for code in codes:
        if not isinstance(code, str) or not NAICS_CODE.fullmatch(code):
            raise InvalidFilter(
                f"filters.naics_codes: {code!r}: naics code filtering only supported for codes "
                "with lengths of 2, 4, and 6"
            )
    return _hierarchy("naics_code", codes[: len(require)], codes[len(require) :])


def _psc_codes(paths: list[Any], where: str | None) -> list[str]:
    """The codes a list of PSC paths stands for: a path's last code (its others are prefixes of
    it), a lone tier-1 name the first characters of its codes. ``where`` is None for the legacy
    form, a list of codes."""
    codes: list[str] = []
    for i, path in enumerate(paths):
        at = f"filters.psc_codes.{where}[{i}]" if where else f"filters.psc_codes[{i}]"
        if where is None:
            path = [path]
        elif not isinstance(path, list) or not path:
            raise InvalidFilter(f"{at} must be a non-empty list (a path of codes)")
        elif path[0] not in PSC_GROUPS:
            raise InvalidFilter(
                f"{at}: Tier1 PSC filter values must be one of: {tuple(PSC_GROUPS)}; "
                f"offending code {path[0]!r}"
            )
        elif len(path) == 1:
            codes.extend(PSC_GROUPS[path[0]])
            continue
        else:
            path = path[1:]
        for code in path:
            if not isinstance(code, str) or not PSC_CODE.fullmatch(code):
                raise InvalidFilter(
                    f"{at}: PSC codes must be one to four character uppercased alphanumeric "
                    f"strings; offending code {code!r}"
                )
        codes.append(path[-1])
    return codes


def _psc(filters: dict[str, Any]) -> Node:
    require, exclude = _require_exclude(filters, "psc_codes")
    if isinstance(filters["psc_codes"], list):
        return _hierarchy("product_or_service_code", _psc_codes(require, None), [])
    return _hierarchy("product_or_service_code", _psc_codes(require, "require"),
                      _psc_codes(exclude, "exclude"))  # fmt: skip


LOCATION_KEYS = {
    "recipient_locations": {"country": "recipient_country_code", "state": "recipient_state_code",
                            "city": "recipient_city_name"},
    "place_of_performance_locations": {"state": "primary_place_of_performance_state_code"},
}  # fmt: skip


def _locations(filters: dict[str, Any], key: str) -> Node:
    columns = LOCATION_KEYS[key]
    parts = []
    for i, location in enumerate(_list(filters, key, dict)):
        where = f"filters.{key}[{i}]"
        extra = sorted(set(location) - set(columns) - {"country"})
        if extra:
            raise InvalidFilter(
                f"{where}.{extra[0]} is not supported by this server: the downloads have no such "
                f"field (supported: country, {', '.join(k for k in columns if k != 'country')})"
            )
        country = location.get("country")
        if not isinstance(country, str) or not country:
            raise InvalidFilter(f"{where}.country is required (a country code, e.g. USA)")
        if "country" not in columns and country != "USA":
            raise InvalidFilter(
                f"{where}.country: only USA locations can be filtered here (the downloads carry "
                "the place of performance's state code, not its country)"
            )
        tests = [_leaf(columns["country"], "=", country)] if "country" in columns else []
        for field in ("state", "city"):
            value = location.get(field)
            if value is None or field not in columns:
                continue
            if not isinstance(value, str) or not value or "%" in value or "_" in value:
                raise InvalidFilter(f"{where}.{field} must be a {field} name or code")
            tests.append(_leaf(columns[field], "ilike" if field == "city" else "=", value))
        if not tests:  # {"country": "USA"} for the place of performance: any US state
            tests.append(_leaf(columns["state"], "not_null"))
        parts.append(tests[0] if len(tests) == 1 else {"and": tests})
    return _any(parts)


def _scope(filters: dict[str, Any]) -> Node:
    scope = filters["recipient_scope"]
    if scope == "domestic":
        return _leaf("recipient_country_code", "=", "USA")
    if scope == "foreign":
        return _leaf("recipient_country_code", "!=", "USA")
    raise InvalidFilter("filters.recipient_scope must be domestic or foreign")


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
    if "naics_codes" in filters:
        parts.append(_naics(filters))
    if "psc_codes" in filters:
        parts.append(_psc(filters))
    if "program_numbers" in filters:
        parts.append(_leaf("cfda_number", "in", _list(filters, "program_numbers", str)))
    for key in ("recipient_locations", "place_of_performance_locations"):
        if key in filters:
            parts.append(_locations(filters, key))
    if "recipient_scope" in filters:
        parts.append(_scope(filters))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}
