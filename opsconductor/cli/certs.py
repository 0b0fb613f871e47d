"""`opsconductor certs show|rotate`: the running stack's workload certificates (identity,
expiry, files), and renewing all of them now, which every process picks up without a restart."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from cryptography import x509

from opsconductor.cli.arguments import add_state_dir
from opsconductor.identity.operator import identity_root
from opsconductor.stack import control, state
from services.common.certificates import identity_of


def run_show(args: argparse.Namespace) -> int:
    root = identity_root(args.state_dir)
    bundles = sorted(path.parent for path in root.glob("*/tls.crt"))
    if not bundles:
        print(f"no workload certificates under {root.resolve()} (a stack started by `opsconductor up` has them)")
        return 1
    now = datetime.datetime.now(datetime.timezone.utc)
    for directory in bundles:
        certificate = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
        left = certificate.not_valid_after_utc - now
        print(f"  {directory.name:<18} {identity_of(certificate) or '(edge: host names only)':<52} "
              f"expires {certificate.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC ({_duration(left)} left)")
    print(f"\nCA: {root / 'ca' / 'ca.crt'} (its key stays in {root / 'ca'})")
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    try:
        stack = state.load(args.state_dir)
        for line in control.send(Path(stack.control_socket), {"op": "rotate"}):
            print(line)
    except (state.NoStack, RuntimeError, OSError) as error:
        print(f"opsconductor certs rotate: {error}", file=sys.stderr)
        return 1
    return 0


def _duration(delta: datetime.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s"


def add_parsers(commands) -> None:
    certs = commands.add_parser("certs", help="the mesh's workload certificates: show, rotate",
                                description=__doc__)
    actions = certs.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, function, text in (("show", run_show, "each workload's identity and expiry"),
                                 ("rotate", run_rotate, "renew every certificate of the running stack now")):
        parser = actions.add_parser(name, help=text, description=text)
        parser.set_defaults(func=function)
        add_state_dir(parser)
