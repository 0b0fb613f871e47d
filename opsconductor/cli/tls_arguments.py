"""`up`'s TLS flags: the workload certificates' lifetime, and TLS at the gateway's edge."""

from __future__ import annotations

import argparse

from opsconductor.cli.parsing import existing_file, seconds
from opsconductor.identity.spec import TlsSpec
from opsconductor.identity.store import DEFAULT_LIFETIME_S

MIN_LIFETIME_S = 5  # renewals every few seconds: what a rotation test uses; below, renewal races expiry


def add_tls_arguments(up: argparse.ArgumentParser) -> None:
    up.add_argument("--cert-lifetime", type=seconds, default=DEFAULT_LIFETIME_S, metavar="S",
                    help=f"workload certificates' lifetime in seconds, renewed at two thirds "
                         f"(default {DEFAULT_LIFETIME_S:g})")
    up.add_argument("--tls", action="store_true",
                    help="the gateway terminates TLS (native gRPC over h2 and gRPC-Web over HTTPS on one port) "
                         "with a certificate of the local CA, or the one --tls-cert/--tls-key give")
    up.add_argument("--tls-cert", type=existing_file, metavar="FILE",
                    help="with --tls: the gateway's certificate (PEM)")
    up.add_argument("--tls-key", type=existing_file, metavar="FILE", help="with --tls: its private key (PEM)")


def tls_spec_from_args(args: argparse.Namespace) -> TlsSpec:
    """Raises ValueError naming the flag at fault."""
    if not args.cert_lifetime >= MIN_LIFETIME_S:
        raise ValueError(f"--cert-lifetime must be at least {MIN_LIFETIME_S} s")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None and not args.tls:
        raise ValueError("--tls-cert and --tls-key need --tls")
    return TlsSpec(lifetime_s=args.cert_lifetime, edge=args.tls, edge_cert=args.tls_cert, edge_key=args.tls_key)
