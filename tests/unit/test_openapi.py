"""/openapi.json and the application hold exactly the same operations; the document is a valid
OpenAPI 3.1 document (schemathesis loads it); its job schema follows the Avro contract."""

from __future__ import annotations

from app.api.fills import FillContext
from app.api.kernel import ApiContext
from app.api.openapi import document
from app.api.server import create_web_app
from app.health import Health
from app.metrics import Metrics
from app.settings import Settings


def test_the_document_lists_every_route_of_every_profile_and_no_other() -> None:
    settings = Settings()
    app = create_web_app(ApiContext(settings=settings, health=Health(), metrics=Metrics()),
                         fills=FillContext(settings, Metrics(), None, None))  # type: ignore[arg-type]  # fmt: skip
    routed = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.method != "HEAD" and r.resource is not None}  # fmt: skip
    documented = {(method, path) for path, ops in document()["paths"].items() for method in ops}
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
