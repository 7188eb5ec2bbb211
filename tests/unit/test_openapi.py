"""/openapi.json and the application hold exactly the same operations; the document is a valid
OpenAPI 3.1 document (schemathesis loads it); its job schema follows the Avro contract; it names
the dataset types of the catalog the server runs with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from app.api.fills import FillContext
from app.api.openapi import DOCUMENT
from app.api.server import create_web_app
from app.catalog.loader import default_catalog
from app.catalog.types import Catalog
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings
from tests.fakes import api_context


def served(catalog: Catalog | None = None) -> Any:
    settings = Settings()
    return create_web_app(api_context(settings=settings, health=Health(), metrics=Metrics(),
                                     catalog=catalog or default_catalog()),
                          fills=FillContext(settings, Metrics(), None, None, None))  # type: ignore[arg-type]  # fmt: skip


def document() -> dict[str, Any]:
    return served()[DOCUMENT]  # type: ignore[no-any-return]


def test_the_document_lists_every_route_of_every_profile_and_no_other() -> None:
    app = served()
    routed = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}  # fmt: skip
    documented = {(method, path) for path, ops in app[DOCUMENT]["paths"].items() for method in ops}
    assert routed == documented, routed ^ documented


def test_the_document_loads_as_openapi_and_every_operation_answers_something() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(document())
    operations = list(schema.get_all_operations())
    assert len(operations) == len([m for ops in document()["paths"].values() for m in ops])
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)


def test_the_job_schema_is_the_avro_job_status_minus_hidden_fields() -> None:
    job = document()["paths"]["/v1/jobs/{request_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    properties = job["properties"]
    assert {"request_id", "status", "outputs", "download_urls", "total_rows"} <= set(properties)
    assert not {"sealed_key", "fingerprint", "lease_expires_at"} & set(properties)
    assert "AWAITING_INPUT" in properties["status"]["enum"]


async def test_the_served_document_names_the_types_of_the_running_catalog(tmp_path: Path) -> None:
    builtin = Path(__file__).parents[2] / "app" / "catalog" / "builtin" / "table-export.yaml"
    text = builtin.read_text()
    (tmp_path / "own.yaml").write_text(text.replace("name: table-export", "name: own-export"))
    # A type limited to one channel must not be named to everyone who reads the document.
    limited = text.replace("name: table-export", "name: acme-only-export")
    (tmp_path / "limited.yaml").write_text(limited + "\naccess: {channels: [acme]}\n")
    async with TestClient(TestServer(served(default_catalog([tmp_path])))) as http:
        answer = await http.get("/openapi.json")
        assert answer.status == 200
        body = await answer.json()
    submission = body["paths"]["/v1/requests"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    named = submission["properties"]["dataset"]["enum"]
    assert "own-export" in named and "table-export" in named
    assert "acme-only-export" not in named
    assert "own-export" not in document()["paths"]["/v1/requests"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]["properties"]["dataset"]["enum"]  # fmt: skip
