"""Sealing of encryption keys: how a request's zip password reaches the generator without ever
being in clear on a topic, in a table, in a log or in an HTTP answer.

The API seals the key (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``) before the
request is published; a producer writing the requests topic directly may send it in clear, and
the requests agent seals it before anything else sees it. The job (``JobStatus.sealed_key``) and
its work item (``WorkItem.sealed_key``) carry only the sealed form, so a retry on another worker
can still open it; the generator opens it in memory just before writing the zip.

Every worker needs the same key: ``EXHAUST_SECRETS_KEY`` (``Fernet.generate_key()``). Without
it, a single node reads or creates ``{state_dir}/secrets.key`` (mode 0600), which is enough for
``make run`` but not for several workers on several machines.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from app.domain.errors import ConfigurationError
from app.domain.model import SEALED_PREFIX as PREFIX
from app.domain.model import is_sealed
from app.settings import Settings


class Sealer:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise ConfigurationError(
                "secrets_key must be a Fernet key (32 url-safe base64-encoded bytes)"
            ) from exc

    def seal(self, clear: str) -> str:
        """Seal exactly ``clear``, whatever it looks like: a client that sends a sealed token
        (copied from a topic) gets that text as its password, never the key sealed inside it.
        Callers holding a value that may already be sealed (the requests agent) check
        :func:`~app.domain.model.is_sealed` themselves."""
        return PREFIX + self._fernet.encrypt(clear.encode()).decode()

    def open(self, sealed: str) -> str:
        if not is_sealed(sealed):
            raise ConfigurationError("an encryption key reached the generator unsealed")
        try:
            return self._fernet.decrypt(sealed[len(PREFIX) :].encode()).decode()
        except InvalidToken as exc:
            raise ConfigurationError(
                "cannot open a sealed encryption key: the workers do not share one secrets_key"
            ) from exc


def sealer_for(settings: Settings) -> Sealer:
    if settings.secrets_key is not None:
        return Sealer(settings.secrets_key.get_secret_value().encode())
    path = settings.state_dir / "secrets.key"
    return Sealer(_read_or_create(path))


def _read_or_create(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this node created it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
