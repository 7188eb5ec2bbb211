"""Renders the settings table of ``docs/configuration.md`` from :class:`app.settings.Settings`.

``python -m app.config_doc > docs/configuration.md`` regenerates it; a unit test fails when the
file and the class drift apart.
"""

from __future__ import annotations

from pydantic import SecretStr

from app.settings import Settings

HEADER = """# Configuration

Exhaust reads one settings object at start, from environment variables with the `EXHAUST_`
prefix (or a `.env` file in the working directory). Secrets are `SecretStr`: never logged or
echoed. Generated from `app/settings.py` by `python -m app.config_doc`; do not edit by hand.

| variable | default | meaning |
|---|---|---|
"""


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "(secret)" if isinstance(default, SecretStr) else f"`{default}`"
        rows.append(f"| `EXHAUST_{name.upper()}` | {shown} | {field.description or ''} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
