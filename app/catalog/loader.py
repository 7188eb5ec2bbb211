"""The catalog a service runs with: the built-in types, the declared types shipped with Exhaust
and an operator's own (``settings.catalog_dir``)."""

from __future__ import annotations

from pathlib import Path

from app.catalog.builtin import DEMO_EXPORT, NOOP
from app.catalog.declared import BUILTIN_DIR, load_declared
from app.catalog.types import Catalog
from app.domain.errors import ConfigurationError


def default_catalog(directories: list[Path] | None = None) -> Catalog:
    """The built-in types, the declared types shipped in ``app/catalog/builtin/`` and those of
    ``directories`` (``settings.catalog_dir``); a later file may not redefine a name."""
    catalog = Catalog()
    catalog.register(DEMO_EXPORT)
    catalog.register(NOOP)
    for declared in load_declared([BUILTIN_DIR, *(directories or [])]):
        if declared.name in catalog.types:
            raise ConfigurationError(
                f"dataset type {declared.name!r} is declared twice (catalog file {declared.origin})"
            )
        catalog.register(declared)
    return catalog
