"""How every Kafka client of the service connects: one place for bootstrap servers, TLS and SASL.

Every producer, consumer and admin client the service creates (the writer's Faust app, the
API's publisher, the generators' work consumer, the read model's feeders, the queue probe, the
CLI) takes its connection from :func:`client_options` or, for Faust, :func:`faust_credentials`,
so a cluster that requires ``SASL_SSL`` or mutual TLS is configured once, in settings:

* ``SASL_SSL``: SCRAM-SHA-512 (or -256, or PLAIN) over TLS, the broker checked against
  ``EXHAUST_KAFKA_SSL_CAFILE`` (or the system's CAs) and its host name;
* ``SSL``: TLS, with ``EXHAUST_KAFKA_SSL_CERTFILE``/``KEYFILE`` as the client certificate for
  mutual TLS (the broker maps the certificate's subject to the principal);
* ``PLAINTEXT``: the local stack. Refused towards a broker off this machine unless
  ``EXHAUST_KAFKA_ALLOW_PLAINTEXT`` says the network is trusted
  (:func:`app.settings.unsafe_combinations`).

Passwords are read from ``SecretStr`` settings at the moment a client is built and handed to
the client only; nothing here logs them. A missing or unreadable certificate file is a
:class:`~app.domain.errors.ConfigurationError` naming the setting, not a TLS error later.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

from app.domain.errors import ConfigurationError
from app.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT


def _readable(setting: str, path: Path | None) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigurationError(f"EXHAUST_{setting.upper()}={path}: no such file")
    return str(path)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of the settings' protocol (None without TLS): the CA bundle, the
    client certificate for mutual TLS, host-name checks on unless turned off."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = settings.kafka_ssl_key_password.get_secret_value() or None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=_readable("kafka_ssl_cafile", settings.kafka_ssl_cafile),
            certfile=_readable("kafka_ssl_certfile", settings.kafka_ssl_certfile),
            keyfile=_readable("kafka_ssl_keyfile", settings.kafka_ssl_keyfile),
            password=password,
        )
    except ssl.SSLError as exc:  # a file that is not PEM, a key that does not match
        raise ConfigurationError(f"cannot load the Kafka TLS files: {exc.reason or exc}") from exc
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments that connect an aiokafka producer, consumer or admin client."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return options


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """The same connection as Faust's ``broker_credentials`` (None: PLAINTEXT)."""
    # Imported here: the CLI and the API connect through this module without loading Faust.
    from faust.auth import SASLCredentials, SSLCredentials
    from faust.types.auth import SASLMechanism

    protocol = settings.kafka_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL_"):
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=SASLMechanism(settings.kafka_sasl_mechanism),
        )
    if protocol == "SSL":
        return SSLCredentials(context)
    return None


__all__ = ["client_options", "faust_credentials", "ssl_context"]
