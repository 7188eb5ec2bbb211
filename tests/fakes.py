"""In-memory doubles for narrow unit tests only; behaviour is proven on the real stack."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.domain.errors import InputsTooLarge, NotFound
from app.engine.storage import Uploaded


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

    async def presign_get(self, key: str, expires_in: int) -> str:
        return f"memory://{key}?expires={expires_in}"

    def link(self, key: str, expires_in: int) -> tuple[str, int]:
        return f"memory://{key}?expires={expires_in}", 1_000 * expires_in

    async def presign_put(self, key: str, expires_in: int) -> str:
        return f"memory://{key}?put&expires={expires_in}"
