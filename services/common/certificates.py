"""A workload's certificate, key and CA as files that change while it runs: read consistently,
checked, re-read every second, and its expiry exported as a metric.

The files may be replaced at any time (a local renewal, cert-manager renewing a mounted
Secret). Both write the way the kubelet does: the files are symlinks into a directory that is
swapped by renaming one `..data` symlink, so resolving the paths first gives one consistent,
never-modified set. A key that does not match its certificate (a writer caught in between)
is not taken; the next read tries again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry, Gauge

from services.common import spiffe
from services.common.config import TlsConfig

_LOGGER = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 1.0


class CertificateError(RuntimeError):
    """The certificate files are missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Material:
    """One consistent read of the files."""

    certificate_chain: bytes
    private_key: bytes
    ca: bytes
    identity: str  # the certificate's SPIFFE URI SAN ("" when it has none)
    not_before: float
    not_after: float
    paths: tuple[str, str, str]  # resolved (immutable) certificate, key and CA files

    @property
    def lifetime_s(self) -> float:
        return self.not_after - self.not_before


def read_material(tls: TlsConfig) -> Material:
    """The files as they are now; raises CertificateError naming what is wrong."""
    paths = tuple(os.path.realpath(path) for path in (tls.cert_file, tls.key_file, tls.ca_file))
    try:
        chain, key, ca = (Path(path).read_bytes() for path in paths)
    except OSError as error:
        raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        certificate = x509.load_pem_x509_certificate(chain)
        private_key = serialization.load_pem_private_key(key, password=None)
        x509.load_pem_x509_certificates(ca)
    except ValueError as error:
        raise CertificateError(f"bad PEM in {tls.cert_file}, {tls.key_file} or {tls.ca_file}: {error}") from None
    if private_key.public_key().public_bytes(*_SPKI) != certificate.public_key().public_bytes(*_SPKI):
        raise CertificateError(f"the key in {tls.key_file} does not match the certificate in {tls.cert_file}")
    return Material(chain, key, ca, identity_of(certificate), certificate.not_valid_before_utc.timestamp(),
                    certificate.not_valid_after_utc.timestamp(), paths)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def identity_of(certificate: x509.Certificate) -> str:
    """The certificate's identity in this trust domain, or ""."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    return next((uri for uri in names.get_values_for_type(x509.UniformResourceIdentifier)
                 if spiffe.is_identity(uri)), "")


Subscriber = Callable[[Material], Awaitable[None] | None]


class CertificateWatcher:
    """The current material, re-read every RELOAD_INTERVAL_S; subscribers hear of each change."""

    def __init__(self, tls: TlsConfig, registry: CollectorRegistry | None) -> None:
        self.tls = tls
        self.material = read_material(tls)  # at start a bad file is fatal; later it is retried
        self._subscribers: list[Subscriber] = []
        self._expiry = self._lifetime = None
        if registry is not None:
            self._expiry = Gauge("opsconductor_certificate_expiry_timestamp_seconds",
                                 "When this process's certificate expires (Unix time).", ("identity",),
                                 registry=registry)
            self._lifetime = Gauge("opsconductor_certificate_lifetime_seconds",
                                   "The full lifetime of this process's certificate (renewed at two thirds).",
                                   ("identity",), registry=registry)
        self._export(None, self.material)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def run(self) -> None:
        """Re-reads the files for as long as the service runs."""
        while True:
            await asyncio.sleep(RELOAD_INTERVAL_S)
            await self.reload()

    async def reload(self) -> bool:
        """Takes the files if they changed and are consistent; True when something changed."""
        try:
            material = read_material(self.tls)
        except CertificateError as error:
            _LOGGER.warning("certificate files not taken (keeping the current ones)", extra={"error": str(error)})
            return False
        current = self.material
        if (material.certificate_chain, material.private_key, material.ca) == (
                current.certificate_chain, current.private_key, current.ca):
            return False
        self.material = material
        self._export(current, material)
        _LOGGER.info("certificate reloaded", extra={"identity": material.identity, "not_after": material.not_after})
        for subscriber in self._subscribers:
            result = subscriber(material)
            if result is not None:
                await result
        return True

    def _export(self, old: Material | None, new: Material) -> None:
        if self._expiry is None:
            return
        if old is not None and old.identity != new.identity:
            self._expiry.remove(old.identity)
            self._lifetime.remove(old.identity)
        self._expiry.labels(new.identity).set(new.not_after)
        self._lifetime.labels(new.identity).set(new.lifetime_s)
