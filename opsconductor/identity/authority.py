"""A local certificate authority (an ECDSA P-256 key and a self-signed CA certificate) that
issues short-lived workload certificates carrying SPIFFE URI SANs. Its key never leaves the
directory it was made in."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_CERT, CA_KEY = "ca.crt", "ca.key"
CA_LIFETIME = datetime.timedelta(days=365)
# A CA closer than this to its end is replaced: every workload certificate must fit in it.
CA_MIN_REMAINING = datetime.timedelta(days=30)
_NAME = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OpsConductor Mesh"),
                   x509.NameAttribute(NameOID.COMMON_NAME, "OpsConductor Mesh CA")])


@dataclass(frozen=True)
class Issued:
    """A workload's certificate and key as PEM, and when the certificate expires."""

    certificate: bytes
    private_key: bytes
    ca: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime


class CertificateAuthority:
    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self.certificate = certificate
        self._key = key

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def open(cls, directory: Path) -> CertificateAuthority:
        """The CA kept in `directory` (0700, key 0600), made there when missing or ending soon."""
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        cert_path, key_path = directory / CA_CERT, directory / CA_KEY
        if cert_path.exists() and key_path.exists():
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if certificate.not_valid_after_utc - _now() > CA_MIN_REMAINING:
                return cls(certificate, key)
        authority = cls.create()
        write_private(key_path, authority._key_pem())
        cert_path.write_bytes(authority.pem)
        return authority

    @classmethod
    def create(cls, lifetime: datetime.timedelta = CA_LIFETIME) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        certificate = (
            x509.CertificateBuilder().subject_name(_NAME).issuer_name(_NAME).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
        return cls(certificate, key)

    def issue(self, identity: str, lifetime: datetime.timedelta, dns_names: tuple[str, ...] = (),
              ip_addresses: tuple[str, ...] = ()) -> Issued:
        """A certificate for `identity` (a SPIFFE URI, or "" for a name-only certificate such as
        the gateway's edge one) with a fresh key, valid from now for `lifetime`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        not_after = min(now + lifetime, self.certificate.not_valid_after_utc)
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity)] if identity else []
        names += [x509.DNSName(name) for name in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
        certificate = (
            x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(not_after)
            # The subject is empty, so the names are the certificate's whole identity (critical).
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256()))
        return Issued(certificate.public_bytes(serialization.Encoding.PEM),
                      key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()),
                      self.pem, now, not_after)

    def _key_pem(self) -> bytes:
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    """Writes a file only its owner can read, never readable by others even for an instant."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
