"""`opsconductor certs show|rotate`: the running stack's workload certificates (identity,
expiry, files), and renewing all of them now, a change the supervisor carries out like the
others (serialised with them), which every process picks up without a restart."""

from __future__ import annotations

import argparse
import datetime
import sys

from cryptography import x509

from opsconductor.cli import exits
from opsconductor.cli.arguments import add_state_dir, state_dir
from opsconductor.cli.operation import ChangeFailed, interrupted_change, run_change
from opsconductor.cli.output import add_output, emit
from opsconductor.cli.parsing import command
from opsconductor.identity.operator import identity_root
from opsconductor.stack import control
from services.common.certificates import identity_of


def run_show(args: argparse.Namespace) -> int:
    root = identity_root(state_dir(args))
    bundles = sorted(path.parent for path in root.glob("*/tls.crt"))
    if not bundles:
        print(f"opsconductor certs show: no workload certificates under {root.resolve()} "
              "(a stack started by `opsconductor up` has them)", file=sys.stderr)
        return exits.FAILED
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for directory in bundles:
        certificate = x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes())
        expires = certificate.not_valid_after_utc
        rows.append({"workload": directory.name, "identity": identity_of(certificate) or "",
                     "expires": expires.isoformat(), "seconds_left": max(0, int((expires - now).total_seconds())),
                     "certificate": str(directory / "tls.crt")})

    def table() -> str:
        lines = [f"  {row['workload']:<18} {row['identity'] or '(edge: host names only)':<52} "
                 f"expires {row['expires'][:19].replace('T', ' ')} UTC ({_duration(row['seconds_left'])} left)"
                 for row in rows]
        return "\n".join(lines) + f"\n\nCA: {root / 'ca' / 'ca.crt'} (its key stays in {root / 'ca'})"

    emit(args, {"certificates": rows, "ca": str(root / "ca" / "ca.crt")}, table)
    return exits.OK


def run_rotate(args: argparse.Namespace) -> int:
    try:
        result = run_change(args, "rotate-certificates", {}, echo=lambda line: None)
    except ChangeFailed as error:
        print(f"opsconductor certs rotate: {error}", file=sys.stderr)
        return error.code
    except control.ControlError as error:
        print(f"opsconductor certs rotate: {error}", file=sys.stderr)
        return exits.UNREACHABLE
    emit(args, result, lambda: f"renewed {', '.join(result['renewed'])}; picked up without a restart")
    return exits.OK


def _duration(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s"


def add_parsers(commands) -> None:
    certs = command(commands, "certs", help="the mesh's workload certificates: show, rotate",
                    examples=(("opsconductor certs show", ""), ("opsconductor certs rotate", "")),
                    exit_codes="certs show")
    actions = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    show = command(actions, "show", help="each workload's identity and expiry",
                   examples=(("opsconductor certs show", ""), ("opsconductor certs show -o json", "for scripts")))
    show.set_defaults(func=run_show)
    rotate = command(actions, "rotate", help="renew every certificate of the running stack now",
                     examples=(("opsconductor certs rotate", ""),
                               ("opsconductor certs rotate --wait", "after a change in progress")))
    rotate.add_argument("--wait", action="store_true",
                        help="if another change is in progress, wait for it instead of giving up (exit code 75)")
    rotate.set_defaults(func=run_rotate, interrupted=interrupted_change)
    for parser in (show, rotate):
        add_state_dir(parser)
        add_output(parser)
