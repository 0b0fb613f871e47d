"""`opsconductor automation` and `opsconductor pipeline`: run one service, flags over the environment."""

from __future__ import annotations

import argparse
import os

from opsconductor.cli.parsing import command
from services.common.names import POOLS


def _environment(args: argparse.Namespace, flags: dict[str, str]) -> dict[str, str]:
    """The environment, with command-line flags taking precedence over it."""
    env = dict(os.environ)
    for attribute, variable in flags.items():
        value = getattr(args, attribute, None)
        if value is not None:
            env[variable] = str(value)
    return env


def _automation(args: argparse.Namespace) -> int:
    from services.automation.main import main

    return main(env=_environment(args, {"grpc_addr": "AUTOMATION_GRPC_ADDR", "metrics_addr": "AUTOMATION_METRICS_ADDR",
                                        "pipeline_target": "PIPELINE_TARGET", "pool": "POOL"}))


def _pipeline(args: argparse.Namespace) -> int:
    from services.pipeline.main import main

    return main(env=_environment(args, {"grpc_addr": "PIPELINE_GRPC_ADDR", "metrics_addr": "PIPELINE_METRICS_ADDR",
                                        "pool": "POOL", "bypass_llm": "FEATURE_BYPASS_LLM"}))


def add_parsers(commands) -> None:
    automation = command(commands, "automation", help="run the public automation service",
                         description="Run the automation service. Flags override the environment.",
                         examples=(("opsconductor automation", "on 127.0.0.1:3003, calling the pipeline at :8001"),
                                   ("opsconductor automation --grpc-addr 127.0.0.1:4003 --pool canary", "")))
    automation.add_argument("--grpc-addr", help="listen address (AUTOMATION_GRPC_ADDR, default 127.0.0.1:3003)")
    automation.add_argument("--metrics-addr", help="metrics address (AUTOMATION_METRICS_ADDR, default 127.0.0.1:9091)")
    automation.add_argument("--pipeline-target", help="pipeline address (PIPELINE_TARGET, default 127.0.0.1:8001)")
    automation.add_argument("--pool", choices=POOLS, help="pool (POOL, default stable)")
    automation.set_defaults(func=_automation)

    pipeline = command(commands, "pipeline", help="run the pipeline service that runs tools",
                       description="Run the pipeline service. Flags override the environment.",
                       examples=(("opsconductor pipeline", "on 127.0.0.1:8001"),
                                 ("LOG_FORMAT=json opsconductor pipeline --bypass-llm", "")))
    pipeline.add_argument("--grpc-addr", help="listen address (PIPELINE_GRPC_ADDR, default 127.0.0.1:8001)")
    pipeline.add_argument("--metrics-addr", help="metrics address (PIPELINE_METRICS_ADDR, default 127.0.0.1:9092)")
    pipeline.add_argument("--pool", choices=POOLS, help="pool (POOL, default stable)")
    pipeline.add_argument("--bypass-llm", action="store_const", const="true",
                          help="run ping/echo directly (FEATURE_BYPASS_LLM)")
    pipeline.set_defaults(func=_pipeline)
