"""A certificate authority of the local stack's own, for the secured Kafka (``cryptography``).

Written once under ``{stack_dir}/kafka/tls`` and reused while it is there:

* ``ca.pem``: the CA (EC P-256, 2 years) that the clients trust (``EXHAUST_KAFKA_SSL_CAFILE``);
* ``broker.p12``: the broker's key and certificate (CN ``exhaust-broker``, names ``localhost``
  and ``127.0.0.1``) in a PKCS#12 keystore whose password is in ``broker.pass``;
* ``{principal}.pem`` / ``{principal}.key``: one client certificate per principal for mutual
  TLS, CN = the principal's name (the broker maps the CN to ``User:{CN}``).

For a machine's own tests and demos only: the keys are unencrypted files readable by their
owner. A real cluster's certificates come from its operator (Strimzi's cluster and clients CAs).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_CN = "exhaust-broker"
VALID = datetime.timedelta(days=730)
_CA_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip
_CA_USAGE = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Authority:
    """The files of the local CA."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.directory / "broker.p12"

    @property
    def keystore_password(self) -> str:
        return (self.directory / "broker.pass").read_text().strip()

    def client(self, name: str) -> tuple[Path, Path]:
        """Certificate and key of ``name``'s client certificate."""
        return self.directory / f"{name}.pem", self.directory / f"{name}.key"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _issue(
    subject: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    usages: list[x509.ObjectIdentifier],
    names: list[x509.GeneralName] | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_authority(directory: Path, clients: list[str]) -> Authority:
    """The CA, the broker's keystore and a client certificate per name in ``clients``
    (created when missing)."""
    authority = Authority(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if authority.ca.exists() and all(authority.client(c)[0].exists() for c in clients):
        return authority
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("exhaust local CA"))
        .issuer_name(_name("exhaust local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write(authority.ca, ca_cert.public_bytes(serialization.Encoding.PEM))
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    # The broker's certificate serves its listeners and is its client certificate towards
    # the controller listener (mutual TLS there too).
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    broker_key, broker_cert = _issue(BROKER_CN, ca_key, ca_cert, usages, names)
    password = secrets.token_urlsafe(24)
    keystore = pkcs12.serialize_key_and_certificates(
        BROKER_CN.encode(), broker_key, broker_cert, [ca_cert],
        serialization.BestAvailableEncryption(password.encode()),
    )  # fmt: skip
    _write(authority.keystore, keystore)
    _write(directory / "broker.pass", password.encode())
    for client in clients:
        key, cert = _issue(client, ca_key, ca_cert, [ExtendedKeyUsageOID.CLIENT_AUTH])
        cert_path, key_path = authority.client(client)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _pem_key(key))
    return authority
