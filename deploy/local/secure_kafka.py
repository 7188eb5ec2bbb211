"""The secured local Kafka: its users, certificates and ACLs (``stack_kafka_security``).

* **Users**: ``admin`` (a super user, for the stack's own ACL and readiness calls) and one
  SCRAM-SHA-512 user per principal of :mod:`app.stream.access` (``exhaust-processor``, …),
  each with a random password kept in ``{stack_dir}/kafka/credentials.json`` (mode 600). They
  are created with Kafka's own storage tool when the storage is formatted (``--add-scram``).
* **Certificates**: :mod:`deploy.local.certs` (a CA of the stack's own; a client certificate
  per principal for the mutual-TLS listener).
* **ACLs**: exactly :func:`app.stream.access.grants` of each principal, created once the
  broker is up (:meth:`SecureKafka.apply_acls`).

``python -m deploy.local.stack env ROLE`` prints the ``EXHAUST_KAFKA_*`` settings that connect
as ``ROLE``'s principal (with ``--mtls``: by certificate on the TLS port).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import warnings

from app.domain.errors import StackError
from app.settings import Settings
from app.stream.access import PRINCIPAL_ROLES, PrincipalRole, grants, principal
from deploy.local.certs import Authority, ensure_authority

ADMIN = "admin"
SCRAM = "SCRAM-SHA-512"


class SecureKafka:
    """Credentials and ACLs of the secured local broker of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.stack_dir / "kafka"

    @property
    def principals(self) -> list[str]:
        return [principal(role) for role in PRINCIPAL_ROLES]

    def authority(self) -> Authority:
        return ensure_authority(self.home / "tls", self.principals)

    def passwords(self) -> dict[str, str]:
        """``{user: password}`` for admin and every principal (created once)."""
        path = self.home / "credentials.json"
        if path.exists():
            stored: dict[str, str] = json.loads(path.read_text())
            return stored
        self.home.mkdir(parents=True, exist_ok=True)
        # URL-safe characters only: the storage tool's --add-scram syntax has no quoting.
        created = {name: secrets.token_urlsafe(18) for name in [ADMIN, *self.principals]}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(created, out)
        return created

    def client_env(self, role: PrincipalRole | None, mtls: bool = False) -> dict[str, str]:
        """``EXHAUST_*`` settings that connect as ``role``'s principal (None: as admin)."""
        tls = self.authority()
        if mtls:
            if role is None:
                raise StackError("the admin connects with SCRAM; choose a role for mutual TLS")
            cert, key = tls.client(principal(role))
            return {
                "EXHAUST_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.settings.stack_kafka_tls_port}",
                "EXHAUST_KAFKA_SECURITY_PROTOCOL": "SSL",
                "EXHAUST_KAFKA_SSL_CAFILE": str(tls.ca.resolve()),
                "EXHAUST_KAFKA_SSL_CERTFILE": str(cert.resolve()),
                "EXHAUST_KAFKA_SSL_KEYFILE": str(key.resolve()),
            }
        user = ADMIN if role is None else principal(role)
        return {
            "EXHAUST_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.settings.stack_kafka_port}",
            "EXHAUST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "EXHAUST_KAFKA_SASL_MECHANISM": SCRAM,
            "EXHAUST_KAFKA_SASL_USERNAME": user,
            "EXHAUST_KAFKA_SASL_PASSWORD": self.passwords()[user],
            "EXHAUST_KAFKA_SSL_CAFILE": str(tls.ca.resolve()),
        }

    def client_settings(self, role: PrincipalRole | None, mtls: bool = False) -> Settings:
        """``settings`` connecting as ``role`` (None: as admin)."""
        env = self.client_env(role, mtls)
        updates = {key.removeprefix("EXHAUST_").lower(): value for key, value in env.items()}
        return Settings(**{**self.settings.model_dump(), **updates})

    def apply_acls(self) -> int:
        """Create every principal's ACLs in one request (adding an existing ACL is a no-op);
        return how many.

        kafka-python's admin client, because aiokafka has no ACL calls and Kafka's own
        ``kafka-acls`` takes one JVM per principal and set of operations: 15 calls, 19 s here,
        against well under a second for the one request."""
        with warnings.catch_warnings():  # kafka-python 3.0 reads its schemas with a
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated importlib call
            from kafka.admin import (
                ACL,
                ACLOperation,
                ACLPermissionType,
                ACLResourcePatternType,
                KafkaAdminClient,
                ResourcePattern,
                ResourceType,
            )

        acls = []
        for role in PRINCIPAL_ROLES:
            for grant in grants(self.settings, role):
                pattern = ResourcePattern(
                    ResourceType[grant.resource.upper()],
                    grant.name,
                    ACLResourcePatternType.PREFIXED
                    if grant.prefixed
                    else ACLResourcePatternType.LITERAL,
                )
                for operation in grant.operations:
                    name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).upper()  # DescribeConfigs
                    acls.append(
                        ACL(
                            f"User:{principal(role)}",
                            "*",
                            ACLOperation[name],
                            ACLPermissionType.ALLOW,
                            pattern,
                        )
                    )
        env = self.client_env(None)
        admin = KafkaAdminClient(
            bootstrap_servers=env["EXHAUST_KAFKA_BOOTSTRAP"],
            security_protocol="SASL_SSL",
            sasl_mechanism=SCRAM,
            sasl_plain_username=ADMIN,
            sasl_plain_password=env["EXHAUST_KAFKA_SASL_PASSWORD"],
            ssl_cafile=env["EXHAUST_KAFKA_SSL_CAFILE"],
        )
        try:
            result = admin.create_acls(acls)
        finally:
            admin.close()
        if result["failed"]:
            acl, error = result["failed"][0]
            raise StackError(f"could not create {len(result['failed'])} ACLs, first {acl}: {error}")
        return len(acls)


__all__ = ["ADMIN", "SCRAM", "SecureKafka"]
