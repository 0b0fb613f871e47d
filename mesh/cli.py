"""The `opsconductor` command: runs the services and operates the mesh."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from services.common.config import ConfigError, automation_config, pipeline_config


def _automation(args: argparse.Namespace) -> int:
    from services.automation.main import run

    return run(automation_config(_environment(args, {
        "grpc_addr": "AUTOMATION_GRPC_ADDR", "metrics_addr": "AUTOMATION_METRICS_ADDR",
        "pipeline_target": "PIPELINE_TARGET", "pool": "POOL"})))


def _pipeline(args: argparse.Namespace) -> int:
    from services.pipeline.main import run

    return run(pipeline_config(_environment(args, {
        "grpc_addr": "PIPELINE_GRPC_ADDR", "metrics_addr": "PIPELINE_METRICS_ADDR", "pool": "POOL",
        "bypass_llm": "FEATURE_BYPASS_LLM"})))


def _environment(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, str]:
    """The environment, with command-line flags taking precedence over it."""
    env = dict(os.environ)
    for attribute, variable in flags.items():
        value = getattr(args, attribute, None)
        if value is not None:
            env[variable] = str(value)
    return env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opsconductor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    automation = commands.add_parser("automation", help="run the public automation service",
                                     description="Run the automation service. Flags override the environment.")
    automation.add_argument("--grpc-addr", help="listen address (AUTOMATION_GRPC_ADDR, default 127.0.0.1:3003)")
    automation.add_argument("--metrics-addr", help="metrics address (AUTOMATION_METRICS_ADDR, default 127.0.0.1:9091)")
    automation.add_argument("--pipeline-target", help="pipeline address (PIPELINE_TARGET, default 127.0.0.1:8001)")
    automation.add_argument("--pool", choices=("stable", "canary"), help="pool (POOL, default stable)")
    automation.set_defaults(func=_automation)

    pipeline = commands.add_parser("pipeline", help="run the pipeline service that runs tools",
                                   description="Run the pipeline service. Flags override the environment.")
    pipeline.add_argument("--grpc-addr", help="listen address (PIPELINE_GRPC_ADDR, default 127.0.0.1:8001)")
    pipeline.add_argument("--metrics-addr", help="metrics address (PIPELINE_METRICS_ADDR, default 127.0.0.1:9092)")
    pipeline.add_argument("--pool", choices=("stable", "canary"), help="pool (POOL, default stable)")
    pipeline.add_argument("--bypass-llm", action="store_const", const="true",
                          help="run ping/echo directly (FEATURE_BYPASS_LLM)")
    pipeline.set_defaults(func=_pipeline)

    from mesh import bench, canary, frontend_check, gate, smoke, up

    up.add_parsers(commands)
    canary.add_parser(commands, up.DEFAULT_STATE_DIR)
    smoke.add_parser(commands)
    gate.add_parser(commands)
    frontend_check.add_parser(commands)
    bench.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"opsconductor {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
