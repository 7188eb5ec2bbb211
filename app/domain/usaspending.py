"""The USAspending download v2 profile's vocabulary, without I/O: the award and
transaction download columns (names and titles of the public USAspending download, from
usaspending-api's ``download_column_historical_lookups``, plus USAspending's documented examples
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

from app.domain import usaspending_columns
from app.domain.errors import InvalidFilter, OutOfRange, UnknownColumn

Kind = Literal["awards", "transactions"]


@dataclass(frozen=True, slots=True)
class DownloadColumn:
    value: str  # the CSV header and the name requests use (usaspending-api's)
    title: str  # shown by GET /v2/download/columns
    type: str  # the managed dataset's column type (dataset-fill vocabulary)
    name: str  # the managed dataset's column name (``value`` is its alias)
    contracts: bool  # in usaspending-api's contract (d1) file
    assistance: bool  # in usaspending-api's assistance (d2) file


# Words a title keeps as usaspending-api's site writes them.
TITLE_WORDS = {
    "id": "ID", "uei": "UEI", "duns": "DUNS", "piid": "PIID", "fain": "FAIN", "uri": "URI",
    "sai": "SAI", "naics": "NAICS", "psc": "PSC", "cfda": "CFDA", "idv": "IDV", "idc": "IDC",
    "dod": "DOD", "epa": "EPA", "sam": "SAM", "fips": "FIPS", "cd": "CD", "iija": "IIJA",
    "covid-19": "COVID-19", "usaspending": "USAspending", "dot": "DOT", "sba": "SBA",
    "gfe": "GFE", "gfp": "GFP", "a76": "A-76", "us": "US", "c8a": "8(a)", "8a": "8(a)",
    "hubzone": "HUBZone", "fed": "Fed", "zip": "ZIP", "scorporation": "S Corporation",
}  # fmt: skip
SMALL_WORDS = {"of", "or", "and", "for", "the", "to", "from", "in", "as", "this"}
TITLES = {  # the titles earlier versions of this profile answered
    "award_id_piid": "Award ID (PIID)", "award_id_fain": "Award ID (FAIN)",
    "parent_award_id_piid": "Parent Award ID (PIID)",
    "product_or_service_code": "Product or Service Code (PSC)",
}  # fmt: skip
NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


def _title(value: str) -> str:
    if value in TITLES:
        return TITLES[value]
    words = []
    for i, word in enumerate(value.replace("_", " ").split()):
        key = word.lower()
        words.append(TITLE_WORDS.get(key) or (key if i and key in SMALL_WORDS
                                              else word[:1].upper() + word[1:]))  # fmt: skip
    return " ".join(words)


def _type(value: str) -> str:
    """The column's type, from usaspending-api's naming (amounts, dates, fiscal years, counts)."""
    if value.endswith("_fiscal_year") or value in ("number_of_actions",
                                                    "number_of_offers_received"):  # fmt: skip
        return "integer"
    if value.endswith("_date"):
        return "date"
    money = ("amount", "obligation", "obligated", "_value", "value_of", "_cost", "percent")
    if any(part in value for part in money) and not value.startswith("disaster_"):
        return "number"
    return "string"


def _name(value: str) -> str:
    """A dataset column name for a header that is not one (``1862_…``, ``…COVID-19…``)."""
    name = value.lower().replace("-", "_")
    return name if NAME.fullmatch(name) and not name[0].isdigit() else f"c{name}"


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> list[str]:
    """``first`` in order, each name only ``second`` has placed after its predecessor there."""
    merged = list(first)
    for i, value in enumerate(second):
        if value not in merged:
            at = merged.index(second[i - 1]) + 1 if i else 1
            merged.insert(at, value)
    return merged


def _columns(
    contracts: tuple[str, ...], assistance: tuple[str, ...], extras: dict[str, tuple[str, str]]
) -> tuple[DownloadColumn, ...]:
    """The union of both files' columns; ``extras`` (name → (\"before\"|\"after\", neighbour))
    are the columns this profile has besides (USAspending's documented examples and earlier
    versions')."""
    values = _merge(contracts, assistance)
    for value, (where, neighbour) in extras.items():
        values.insert(values.index(neighbour) + (where == "after"), value)
    columns = tuple(
        DownloadColumn(v, _title(v), _type(v), _name(v),
                       v in contracts or v in extras, v in assistance or v in extras)
        for v in values
    )  # fmt: skip
    names = [c.name for c in columns]
    assert len(set(names)) == len(names), "two download columns share a dataset name"
    return columns


# USAspending's documented examples (``assistance_type``, ``awarding_agency``: "Department of Energy
# (089)") and two columns earlier versions of the download had, kept for their clients.
AWARD_COLUMNS = _columns(
    usaspending_columns.AWARD_CONTRACTS,
    usaspending_columns.AWARD_ASSISTANCE,
    {"awarding_agency": ("before", "awarding_agency_code"),
     "assistance_type": ("after", "award_type"),
     "award_description": ("after", "prime_award_base_transaction_description"),
     "cfda_number": ("after", "cfda_numbers_and_titles")},
)  # fmt: skip
TRANSACTION_COLUMNS = _columns(
    usaspending_columns.TRANSACTION_CONTRACTS,
    usaspending_columns.TRANSACTION_ASSISTANCE,
    {"awarding_agency": ("before", "awarding_agency_code"),
     "assistance_type": ("after", "award_type")},
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
    "recipient_scope", "place_of_performance_locations", "place_of_performance_scope",
    "def_codes", "tas_codes",
)  # fmt: skip
# usaspending-api's award_type_mapping: contracts, IDVs, grants, direct payments, loans, other.
AWARD_TYPE_CODES = (
    "A", "B", "C", "D", "IDV_A", "IDV_B", "IDV_B_A", "IDV_B_B", "IDV_B_C", "IDV_C", "IDV_D",
    "IDV_E", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "-1",
)  # fmt: skip
DATE_TYPES = ("action_date", "last_modified_date", "date_signed", "new_awards_only")
EARLIEST_DATE = "2007-10-01"  # usaspending-api's search data begins with fiscal year 2008
MIN_KEYWORD = 3
# usaspending-api's PSC_GROUPS: a tier-1 name stands for the codes starting with these.
PSC_GROUPS = {
    "Research and Development": ("A",),
    "Service": tuple("BCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "Product": tuple("0123456789"),
}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
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


def _shown(value: Any) -> str:
    """A client's value inside a message, as usaspending-api quotes it (bounded)."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _date(value: Any, key: str) -> str:
    """A ``YYYY-MM-DD`` date not before the data begins (400 malformed, 422 too early)."""
    if not isinstance(value, str) or not DATE.fullmatch(value) or not _real_date(value):
        raise InvalidFilter(f"Invalid value in '{key}'. '{_shown(value)}' is not a valid type "
                            "(date)")  # fmt: skip
    if value < EARLIEST_DATE:
        raise OutOfRange(f"Field '{key}' value '{value}' is below min '{EARLIEST_DATE}'")
    return value


def _real_date(text: str) -> bool:
    year, month, day = (int(part) for part in text.split("-"))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return 1 <= month <= 12 and 1 <= day <= days[month - 1]


def _time_period(download: Download, periods: list[Any]) -> Node:
    """Each period: ``start_date`` (required), ``end_date`` (optional: no upper bound) and
    ``date_type`` (default ``action_date``: a transaction's action date, an award whose actions
    overlap the period; ``date_signed`` and ``new_awards_only``: the award's base action date,
    for transactions a new action (type A) in the period; ``last_modified_date``)."""
    parts = []
    for i, period in enumerate(periods):
        key = "filters|time_period"
        extra = sorted(set(period) - {"start_date", "end_date", "date_type"})
        if extra:
            raise InvalidFilter(f"Unexpected field '{key}|{_shown(extra[0])}'")
        if "start_date" not in period:
            raise InvalidFilter(f"Missing value: '{key}|start_date' is a required field")
        start = _date(period["start_date"], f"{key}|start_date")
        end = period.get("end_date")
        end = None if end is None else _date(end, f"{key}|end_date")
        if end is not None and end < start:
            raise InvalidFilter(f"filters.time_period[{i}]: end_date is before start_date")
        date_type = period.get("date_type", "action_date")
        if date_type not in DATE_TYPES:
            raise InvalidFilter(f"Field '{key}|date_type' is outside valid values "
                                f"{list(DATE_TYPES)}")  # fmt: skip

        def within(column: str, start: str = start, end: str | None = end) -> Node:
            return _leaf(column, "between", [start, end]) if end else _leaf(column, ">=", start)

        if date_type == "last_modified_date":
            parts.append(within("last_modified_date"))
        elif download.kind == "transactions":
            node = within("action_date")
            parts.append(node if date_type == "action_date"
                         else {"and": [node, _leaf("action_type_code", "=", "A")]})  # fmt: skip
        elif date_type == "action_date":
            overlap = [_leaf("award_latest_action_date", ">=", start)]
            if end:
                overlap.insert(0, _leaf("award_base_action_date", "<=", end))
            parts.append(overlap[0] if len(overlap) == 1 else {"and": overlap})
        else:
            parts.append(within("award_base_action_date"))
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


@dataclass(frozen=True, slots=True)
class Place:
    """The columns a location filter compares (``{level}``: summary for awards, transaction
    for transactions, as usaspending-api names the derived location columns)."""

    country: str
    state: str
    city: str
    zips: tuple[str, ...]  # a 5-digit zip matches the first that starts with it
    county_fips: str  # state FIPS + county code
    district: str  # "{state}-{district}", original and current

    def at(self, download: Download, column: str) -> str:
        return column.replace("{level}", "summary" if download.kind == "awards" else "transaction")


PLACES = {
    "recipient_locations": Place(
        "recipient_country_code", "recipient_state_code", "recipient_city_name",
        ("recipient_zip_code", "recipient_zip_4_code"),
        "prime_award_{level}_recipient_county_fips_code",
        "prime_award_{level}_recipient_cd_{which}"),
    "place_of_performance_locations": Place(
        "primary_place_of_performance_country_code", "primary_place_of_performance_state_code",
        "primary_place_of_performance_city_name", ("primary_place_of_performance_zip_4",),
        "prime_award_{level}_place_of_performance_county_fips_code",
        "prime_award_{level}_place_of_performance_cd_{which}"),
}  # fmt: skip
LOCATION_FIELDS = ("country", "state", "county", "city", "district", "district_original",
                   "district_current", "zip")  # fmt: skip
LOCATION_TEXT = {"country": re.compile(r"[A-Za-z]{2,7}"), "state": re.compile(r"[A-Za-z]{2}"),
                 "county": re.compile(r"\d{3}"), "zip": re.compile(r"\d{5}"),
                 "district": re.compile(r"[0-9A-Za-z]{2}")}  # fmt: skip


def _location_value(location: dict[str, Any], field: str, key: str) -> str | None:
    value = location.get(field)
    if value is None:
        return None
    if field.startswith("district") and isinstance(value, str) and len(value) != 2:
        bound = "below min" if len(value) < 2 else "above max"
        raise OutOfRange(f"Field '{key}|{field}' value '{_shown(value)}' is {bound} '2'")
    pattern = LOCATION_TEXT.get("district" if field.startswith("district") else field)
    if not isinstance(value, str) or not value or len(value) > 100 or not value.isprintable():
        raise InvalidFilter(f"Invalid value in '{key}|{field}'. '{_shown(value)}' is not a "
                            "valid type (text)")  # fmt: skip
    if field == "city" and ("%" in value or "_" in value):
        raise InvalidFilter(f"'{key}|city' must be a city name")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidFilter(f"Invalid value in '{key}|{field}'. '{_shown(value)}' is not a "
                            f"{field.split('_')[0]} code")  # fmt: skip
    return value if field == "city" else value.upper()


def _locations(download: Download, filters: dict[str, Any], key: str) -> Node:
    """usaspending-api's location filter: ``country`` required (``FOREIGN``: any but USA);
    ``state``; under a state a ``county`` (3-digit code) or a congressional ``district_original``
    / ``district_current`` (2 characters; ``district`` is the original); ``city``; ``zip`` (5
    digits). A location is the AND of its fields, the list is an OR."""
    place = PLACES[key]
    parts = []
    for i, location in enumerate(_list(filters, key, dict)):
        where = f"filters|{key}"
        extra = sorted(set(location) - set(LOCATION_FIELDS))
        if extra:
            raise InvalidFilter(
                f"Unexpected field '{where}|{_shown(extra[0])}' in "
                f"filters.{key}[{i}] (fields: {', '.join(LOCATION_FIELDS)})"
            )
        values = {f: _location_value(location, f, where) for f in LOCATION_FIELDS}
        if values["country"] is None:
            raise InvalidFilter("Invalid filter:  Missing necessary location field: country.")
        districts = [f for f in ("district", "district_original", "district_current")
                     if values[f]]  # fmt: skip
        if values["state"] is None and (values["county"] or districts):
            raise InvalidFilter("Invalid filter:  Missing necessary location field: state.")
        if values["county"] and districts:
            raise InvalidFilter("Incompatible parameters: 'county' and a congressional district "
                                f"cannot be combined (filters.{key}[{i}])")  # fmt: skip
        if len(districts) > 1:
            raise InvalidFilter(
                "Incompatible parameters: 'district_original' and "
                f"'district_current' cannot be combined (filters.{key}[{i}])"
            )
        country = values["country"]
        tests = [_leaf(place.country, "!=", "USA") if country == "FOREIGN"
                 else _leaf(place.country, "=", country)]  # fmt: skip
        if values["state"]:
            tests.append(_leaf(place.state, "=", values["state"]))
        if values["county"]:
            tests.append(_leaf(place.at(download, place.county_fips), "like",
                               "__" + values["county"]))  # fmt: skip
        for field in districts:
            which = "current" if field == "district_current" else "original"
            column = place.at(download, place.district).replace("{which}", which)
            tests.append(_leaf(column, "=", f"{values['state']}-{values[field]}"))
        if values["city"]:
            tests.append(_leaf(place.city, "ilike", values["city"]))
        if values["zip"]:
            tests.append(_any([_leaf(z, "like", values["zip"] + "%") for z in place.zips]))
        parts.append(tests[0] if len(tests) == 1 else {"and": tests})
    return _any(parts)


DEF_CODE = re.compile(r"[A-Z0-9]{1,3}")


def _def_codes(download: Download, filters: dict[str, Any]) -> Node:
    """Disaster emergency fund codes: rows whose award lists any of them ("L: …;M: …")."""
    column = ("disaster_emergency_fund_codes" if download.kind == "awards"
              else "disaster_emergency_fund_codes_for_overall_award")  # fmt: skip
    codes = _list(filters, "def_codes", str)
    for code in codes:
        if not DEF_CODE.fullmatch(code):
            raise InvalidFilter(
                f"Field 'filters|def_codes' is outside valid values: "
                f"'{_shown(code)}' is not a disaster emergency fund code"
            )
    return _any(
        [
            node
            for code in codes
            for node in (_leaf(column, "like", f"{code}: %"), _leaf(column, "like", f"%;{code}: %"))
        ]
    )


TAS_COLUMN = "treasury_accounts_funding_this_award"
TAS_PARTS = {"ata": r"\d{3}", "aid": r"\d{3}", "bpoa": r"\d{4}", "epoa": r"\d{4}",
             "a": r"[A-Z]", "main": r"\d{4}", "sub": r"\d{3}"}  # fmt: skip
AGENCY = re.compile(r"\d{3}")
FEDERAL_ACCOUNT = re.compile(r"(\d{3})-(\d{4})")
TAS = re.compile(r"(\d{3}-)?\d{3}-(X|\d{4}/\d{4}|\d{4})-\d{4}-\d{3}")


def _tas_object(tas: Any, where: str) -> Node:
    """The legacy form: ``{"aid", "main"}`` required, ``ata``, ``bpoa``, ``epoa``, ``a``,
    ``sub`` optional; a pattern over the award's treasury accounts."""
    if not isinstance(tas, dict) or "aid" not in tas or "main" not in tas:
        raise InvalidFilter(f"{where} needs aid and main (agency and main account codes)")
    for part, value in tas.items():
        if (
            part not in TAS_PARTS
            or not isinstance(value, str)
            or not re.fullmatch(TAS_PARTS[part], value)
        ):
            raise InvalidFilter(f"{where}.{_shown(part)}: not a treasury account part")
    availability = tas.get("a") or (f"{tas['bpoa']}/{tas['epoa']}" if "bpoa" in tas and "epoa"
                                    in tas else "%")  # fmt: skip
    prefix = f"{tas['ata']}-" if "ata" in tas else ""
    return _leaf(
        TAS_COLUMN,
        "like",
        f"%{prefix}{tas['aid']}-{availability}-{tas['main']}-{tas.get('sub', '___')}%",
    )


def _tas_code(code: Any, where: str) -> Node:
    """A path's last code: an agency (``097``), a federal account (``097-0100``) or a treasury
    account symbol (``097-X-0100-000``)."""
    if isinstance(code, str) and AGENCY.fullmatch(code):
        return _any([_leaf(TAS_COLUMN, "like", f"{code}-%"),
                     _leaf(TAS_COLUMN, "like", f"%;{code}-%")])  # fmt: skip
    if isinstance(code, str) and (account := FEDERAL_ACCOUNT.fullmatch(code)):
        return _leaf(TAS_COLUMN, "like", f"%{account[1]}-%-{account[2]}-%")
    if isinstance(code, str) and TAS.fullmatch(code):
        return _leaf(TAS_COLUMN, "like", f"%{code}%")
    raise InvalidFilter(f"{where}: {_shown(code)!r} is not an agency, federal account or "
                        "treasury account code")  # fmt: skip


def _tas_codes(filters: dict[str, Any]) -> Node:
    value = filters["tas_codes"]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return _any([_tas_object(v, f"filters.tas_codes[{i}]") for i, v in enumerate(value)])
    require, exclude = _require_exclude(filters, "tas_codes")

    def codes(paths: list[Any], part: str) -> list[Node]:
        nodes = []
        for i, path in enumerate(paths):
            if not isinstance(path, list) or not path:
                raise InvalidFilter(f"filters.tas_codes.{part}[{i}] must be a path of codes")
            nodes.append(_tas_code(path[-1], f"filters.tas_codes.{part}[{i}]"))
        return nodes

    kept = codes(require, "require")
    dropped = codes(exclude, "exclude")
    if not dropped:
        return _any(kept)
    without = {"or": [_leaf(TAS_COLUMN, "is_null"), {"not": _any(dropped)}]}
    return {"and": [_any(kept), without]} if kept else without


def _scope(filters: dict[str, Any], key: str, column: str) -> Node:
    scope = filters[key]
    if scope == "domestic":
        return _leaf(column, "=", "USA")
    if scope == "foreign":
        return _leaf(column, "!=", "USA")
    raise InvalidFilter(f"Field 'filters|{key}' is outside valid values ['domestic', 'foreign']")


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
        if set(codes) - set(AWARD_TYPE_CODES):
            raise InvalidFilter(f"Field 'filters|award_type_codes' is outside valid values "
                                f"{list(AWARD_TYPE_CODES)}")  # fmt: skip
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
        for word in words:
            if len(word) < MIN_KEYWORD:
                raise OutOfRange(f"Field 'filters|keywords' value '{_shown(word)}' is below min "
                                 f"'{MIN_KEYWORD}' items")  # fmt: skip
        parts.append(_any([_leaf(download.description, "ilike", f"%{w}%") for w in words]))
    if "naics_codes" in filters:
        parts.append(_naics(filters))
    if "psc_codes" in filters:
        parts.append(_psc(filters))
    if "program_numbers" in filters:
        parts.append(_leaf("cfda_number", "in", _list(filters, "program_numbers", str)))
    for key in ("recipient_locations", "place_of_performance_locations"):
        if key in filters:
            parts.append(_locations(download, filters, key))
    if "recipient_scope" in filters:
        parts.append(_scope(filters, "recipient_scope", "recipient_country_code"))
    if "place_of_performance_scope" in filters:
        parts.append(_scope(filters, "place_of_performance_scope",
                            "primary_place_of_performance_country_code"))  # fmt: skip
    if "def_codes" in filters:
        parts.append(_def_codes(download, filters))
    if "tas_codes" in filters:
        parts.append(_tas_codes(filters))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"and": parts}
