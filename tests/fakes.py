"""In-memory doubles for narrow unit tests only; behaviour is proven on the real stack."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from app.api.kernel import ApiContext
from app.catalog.loader import default_catalog
from app.domain.errors import InputsTooLarge, NotFound
from app.engine.storage import Uploaded
from app.health import Health
from app.metrics import Metrics
from app.sealing import Sealer
from app.settings import Settings
from app.stream.read_model import ReadModel


class MemoryStore:
    """An :class:`app.engine.storage.ObjectStore` in a dict; presigned URLs are fake but distinct."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.writes: list[str] = []

    async def ensure_bucket(self) -> None:
        return None

    async def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = data
        self.writes.append(key)

    async def upload_file(self, key: str, path: Path, content_type: str = "") -> Uploaded:
        data = path.read_bytes()
        await self.put_bytes(key, data, content_type)
        return Uploaded(len(data), hashlib.sha256(data).hexdigest())

    async def download_file(self, key: str, path: Path, max_bytes: int | None = None) -> int:
        data = await self.get_bytes(key)
        if max_bytes is not None and len(data) > max_bytes:
            raise InputsTooLarge(f"object {key} is larger than {max_bytes} bytes")
        path.write_bytes(data)
        return len(data)

    async def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(key)
        return self.objects[key]

    async def exists(self, key: str) -> bool:
        return key in self.objects

    async def size(self, key: str) -> int | None:
        data = self.objects.get(key)
        return None if data is None else len(data)

    async def delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    async def list_sizes(self, prefix: str) -> dict[str, int]:
        return {k: len(v) for k, v in self.objects.items() if k.startswith(prefix)}

    async def unfinished_uploads(self, prefix: str) -> list[tuple[str, str]]:
        return []

    async def abort_upload(self, key: str, upload_id: str) -> None:
        return None

    async def presign_get(self, key: str, expires_in: int) -> str:
        return f"memory://{key}?expires={expires_in}"

    def link(self, key: str, expires_in: int) -> tuple[str, int]:
        return f"memory://{key}?expires={expires_in}", 1_000 * expires_in

    async def presign_put(self, key: str, expires_in: int) -> str:
        return f"memory://{key}?put&expires={expires_in}"


def api_context(**parts: Any) -> ApiContext:
    """An :class:`~app.api.kernel.ApiContext` for a unit test of the HTTP routes: the parts the
    test names, and for the others an empty read model, a :class:`MemoryStore` and submissions
    and cancellations that go nowhere."""

    async def nowhere(_: Any) -> None:
        return None

    async def never_visible(*_: Any) -> None:
        return None

    if "read_model" not in parts:
        parts["read_model"] = ReadModel(Path(tempfile.mkdtemp()) / "rm.sqlite3", "jobs")
    defaults: dict[str, Any] = {
        "settings": Settings(), "health": Health(), "metrics": Metrics(),
        "catalog": default_catalog(), "store": MemoryStore(), "submit": nowhere,
        "cancel": nowhere, "sealer": Sealer(Fernet.generate_key()), "visible": never_visible,
    }  # fmt: skip
    return ApiContext(**{**defaults, **parts})
