"""The certificates of one deployment in one directory: issued from its CA, renewed at two
thirds of their lifetime (by a thread, while a local stack runs) or at once on request."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from opsconductor.identity.authority import CertificateAuthority
from opsconductor.identity.bundle import paths, write_bundle
from opsconductor.identity.workloads import Workload

_LOGGER = logging.getLogger(__name__)
RENEW_AT = 2 / 3  # of a certificate's lifetime
DEFAULT_LIFETIME_S = 24 * 3600


@dataclass(frozen=True)
class Files:
    """Where one workload's certificate, key and CA are."""

    directory: Path
    cert: Path
    key: Path
    ca: Path


class IdentityStore:
    """`root`/ca holds the CA; `root`/<workload> each workload's bundle."""

    def __init__(self, root: Path, workloads: Iterable[Workload], lifetime_s: float = DEFAULT_LIFETIME_S,
                 owners: dict[str, tuple[int, int]] | None = None) -> None:
        self.root = root
        self.workloads = {w.name: w for w in workloads}
        self.lifetime = datetime.timedelta(seconds=lifetime_s)
        self._owners = owners or {}
        self._lock = threading.Lock()
        self.authority = CertificateAuthority.open(root / "ca")
        self.rotations = 0  # certificates issued since start (a renewal counts once per workload)

    def files(self, name: str) -> Files:
        directory = self.root / name
        return Files(directory, *paths(directory))

    @property
    def ca_file(self) -> Path:
        return self.root / "ca" / "ca.crt"

    def ensure(self) -> None:
        """Issues every certificate that is missing, from another CA, or due for renewal."""
        with self._lock:
            for workload in self.workloads.values():
                if self._due(workload):
                    self._issue(workload)

    def rotate(self, names: Iterable[str] | None = None) -> list[str]:
        """Issues new certificates now (all by default); returns the workloads rotated."""
        with self._lock:
            chosen = list(names) if names is not None else list(self.workloads)
            unknown = [name for name in chosen if name not in self.workloads]
            if unknown:
                raise ValueError(f"no such workload: {', '.join(unknown)}")
            for name in chosen:
                self._issue(self.workloads[name])
            return chosen

    def next_renewal(self) -> float:
        """Seconds until the first certificate is due (0 when one is due now)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        due = [self._renewal_time(w) for w in self.workloads.values()]
        return max(0.0, min((when - now).total_seconds() for when in due)) if due else 3600.0

    def _due(self, workload: Workload) -> bool:
        return self._renewal_time(workload) <= datetime.datetime.now(datetime.timezone.utc)

    def _renewal_time(self, workload: Workload) -> datetime.datetime:
        now_due = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)
        cert, _, ca = paths(self.root / workload.name)
        try:
            certificate = x509.load_pem_x509_certificate(cert.read_bytes())
            same_ca = ca.read_bytes() == self.authority.pem
        except (OSError, ValueError):
            return now_due  # missing or unreadable: issue it
        if not same_ca or certificate.issuer != self.authority.certificate.subject:
            return now_due  # from a CA that was replaced
        start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        return start + (end - start) * RENEW_AT

    def _issue(self, workload: Workload) -> None:
        issued = self.authority.issue(workload.identity, self.lifetime, workload.dns_names, workload.ip_addresses)
        write_bundle(self.root / workload.name, issued, self._owners.get(workload.name))
        self.rotations += 1
        _LOGGER.info("issued %s (%s) until %s", workload.name, workload.identity or "edge", issued.not_after)


class Renewer:
    """Renews a store's certificates at two thirds of their lifetime, on a daemon thread."""

    def __init__(self, store: IdentityStore) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="certificate-renewal", daemon=True)

    def start(self) -> Renewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(min(max(self.store.next_renewal(), 0.2), 60.0)):
            try:
                self.store.ensure()
            except OSError:
                _LOGGER.exception("certificate renewal failed; retrying")
