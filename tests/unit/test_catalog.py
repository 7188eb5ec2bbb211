"""Dataset types declared as YAML: loading, config schemas, access, and submit-time checks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from app.catalog.declared import DeclaredType, source_format
from app.catalog.loader import default_catalog
from app.domain.errors import (
    ConfigurationError,
    EncryptionKeyRequired,
    ExhaustError,
    InvalidConfig,
    InvalidFilter,
    InvalidOutput,
    UnknownDataset,
)
from app.engine.formats import OutputSpec

RESTRICTED = """
name: payroll-export
description: Payroll rows, for the finance role of one channel, always encrypted.
kind: sql
config_schema:
  type: object
  required: [year]
  properties:
    year: {type: integer, minimum: 2000}
sources:
  payroll: {dataset: payroll}
  extra: {inputs: ndjson}
query: SELECT * FROM payroll WHERE year = $year
output: {format: CSV, compression: ZIP, name: payroll}
encryption: required
access: {channels: [acme], roles: [finance]}
public: false
"""


def catalog_with(tmp_path: Path, *files: str) -> Any:
    for i, text in enumerate(files):
        (tmp_path / f"t{i}.yaml").write_text(textwrap.dedent(text))
    return default_catalog([tmp_path])


def test_the_built_in_types_are_declared_as_data() -> None:
    catalog = default_catalog()
    for name in ("table-export", "summary-report"):
        declared = catalog.get(name)
        assert isinstance(declared, DeclaredType) and declared.origin.endswith(f"{name}.yaml")
    assert {"demo-export", "noop"} <= set(catalog.types)


def test_an_operator_adds_a_type_with_a_yaml_file_only(tmp_path: Path) -> None:
    catalog = catalog_with(tmp_path, RESTRICTED)
    payroll = catalog.get("payroll-export", "acme", "finance")
    assert isinstance(payroll, DeclaredType)
    assert payroll.query_params == ("year",) and payroll.encryption == "required"
    refs = payroll.sources({"year": 2026}, ["acme/in/a.ndjson", "acme/in/b.ndjson"])
    assert [(r.view, r.name, r.input) for r in refs] == [
        ("payroll", "payroll", False), ("extra", "acme/in/a.ndjson", True),
        ("extra", "acme/in/b.ndjson", True),
    ]  # fmt: skip


@pytest.mark.parametrize(("channel", "role"), [("other", "finance"), ("acme", None), ("acme", "x")])
def test_a_type_is_unknown_to_channels_and_roles_it_is_not_for(
    tmp_path: Path, channel: str, role: str | None
) -> None:
    catalog = catalog_with(tmp_path, RESTRICTED)
    with pytest.raises(UnknownDataset) as caught:
        catalog.get("payroll-export", channel, role)
    assert "payroll-export" not in caught.value.message.split("available:")[1]


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({}, "config: 'source' is a required property"),
        ({"source": ""}, "config.source"),
        ({"source": "a", "sort": [{"column": 3}]}, "config.sort[0].column"),
        ({"source": "a", "sort": [{"column": "x", "up": True}]}, "config.sort[0]"),
        ({"source": "a", "limit": -1}, "config.limit"),
        ({"source": "a", "extra": 1}, "config"),
    ],
)
def test_config_is_checked_against_the_types_json_schema_naming_the_field(
    config: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        default_catalog().get("table-export").check(config, None)
    assert caught.value.message.startswith(where)


def test_defaults_of_the_schema_fill_the_config() -> None:
    checked = default_catalog().get("summary-report").check({"source": "s"}, None)
    assert checked == {"source": "s", "group_by": [], "metrics": [{"op": "count"}],
                       "split_by": None}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"filters": json.dumps({"column": "a", "op": "~~", "value": 1})}, InvalidFilter),
        ({"filters": "[1]"}, InvalidFilter),
        ({"output": {"format": "XLSX"}}, InvalidOutput),
        ({"output": {"format": "CSV", "rows_per_file": 0}}, InvalidOutput),
        ({"output": {"compression": "GZIP"}, "encrypted": True}, InvalidOutput),
        ({"columns": ["a", ""]}, InvalidConfig),
    ],
)
def test_filters_output_and_columns_are_checked_at_submit(
    kwargs: dict[str, Any], error: type[ExhaustError]
) -> None:
    table = default_catalog().get("table-export")
    columns = kwargs.pop("columns", None)
    with pytest.raises(error):
        table.check({"source": "s"}, columns, **kwargs)


def test_a_summary_takes_its_columns_from_its_config() -> None:
    with pytest.raises(InvalidConfig, match=r"config\.group_by"):
        default_catalog().get("summary-report").check({"source": "s"}, ["a"])


def test_a_type_that_requires_a_key_refuses_a_request_without_one(tmp_path: Path) -> None:
    payroll = catalog_with(tmp_path, RESTRICTED).get("payroll-export", "acme", "finance")
    with pytest.raises(EncryptionKeyRequired):
        payroll.check({"year": 2026}, None)
    assert payroll.check({"year": 2026}, None, encrypted=True) == {"year": 2026}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: [unclosed", "not YAML"),
        (RESTRICTED.replace("kind: sql", "kind: magic"), "kind"),
        (RESTRICTED.replace("query: SELECT * FROM payroll WHERE year = $year", ""),
         "a query is required by kind sql only"),
        (RESTRICTED.replace("payroll: {dataset: payroll}", "Bad-View: {dataset: payroll}"),
         "sources"),
        (RESTRICTED.replace("minimum: 2000", "minimum: many"), "config_schema"),
        (RESTRICTED.replace("format: CSV", "format: XLSX"), "output"),
        (RESTRICTED.replace("public: false", "public: false\nsecret: 1"), "secret"),
    ],
)  # fmt: skip
def test_a_bad_catalog_file_stops_the_service_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        catalog_with(tmp_path, text)
    assert "t0.yaml" in caught.value.message and message in caught.value.message


def test_a_name_declared_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="declared twice"):
        catalog_with(tmp_path, RESTRICTED, RESTRICTED)
    (tmp_path / "t1.yaml").unlink()
    (tmp_path / "t0.yaml").write_text(RESTRICTED.replace("payroll-export", "table-export"))
    with pytest.raises(ConfigurationError, match="declared twice"):
        default_catalog([tmp_path])


def test_input_formats_come_from_the_name_or_the_declaration() -> None:
    assert source_format("acme/in/users.ndjson") == "ndjson"
    assert source_format("acme/in/users.csv.gz") == "csv"
    assert source_format("acme/in/x.parquet") == "parquet"
    assert source_format("acme/in/blob", "json") == "json"
    with pytest.raises(InvalidConfig, match="cannot tell its format"):
        source_format("acme/in/blob")


def test_an_encryption_key_forces_a_zip_and_defaults_sit_under_the_request() -> None:
    assert OutputSpec.parse(None, {"format": "PARQUET"}, True).compression == "ZIP"
    spec = OutputSpec.parse({"format": "JSONL", "compression": None}, {"compression": "GZIP"},
                            False)  # fmt: skip
    assert (spec.format, spec.compression, spec.extension) == ("JSONL", "GZIP", ".jsonl.gz")
    assert OutputSpec.parse({"format": "PARQUET", "compression": "GZIP"}, {}, False).extension == (
        ".parquet"
    )
