"""Entry point of the local trace store: `python -m services traces` (configured by TRACES_*)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from services.common import server
from services.common.config import TracesConfig, traces_config
from services.traces.otlp import TRACE_SERVICE, TraceReceiver, decode_attributes
from services.traces.query import serve_query
from services.traces.store import SpanStore

_LOGGER = logging.getLogger(__name__)
PRUNE_EVERY_S = 5.0


def run(config: TracesConfig) -> int:
    spec = server.ServiceSpec(name="traces", grpc_service=TRACE_SERVICE, methods=("Export",),
                              common=config.common, grpc_addr=config.grpc_addr, metrics_addr=config.metrics_addr)

    async def setup(runtime: server.Runtime) -> Callable[[], Awaitable[None]]:
        store = SpanStore(config.database, config.max_spans, config.max_age_s, decode=decode_attributes)
        receiver = TraceReceiver(store, runtime.registry)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, runtime.server)
        try:
            query = serve_query(config.query_addr, store)
        except OSError as error:
            raise OSError(f"cannot listen on {config.query_addr} for the query API: {error.strerror}") from None
        _LOGGER.info("trace store", extra={"query_port": query.server_address[1], "database": config.database,
                                           "max_spans": config.max_spans, "max_age_s": config.max_age_s})

        async def prune_forever() -> None:
            while True:
                await asyncio.sleep(PRUNE_EVERY_S)
                aged, sized = await asyncio.to_thread(store.prune)
                receiver.pruned.labels("age").inc(aged)
                receiver.pruned.labels("size").inc(sized)

        pruning = asyncio.create_task(prune_forever(), name="trace-prune")
        await runtime.set_ready(True)

        async def release() -> None:
            pruning.cancel()
            query.shutdown()
            store.close()

        return release

    return server.run(spec, setup)


def main(argv: Sequence[str] = (), env: Mapping[str, str] = os.environ) -> int:
    return server.main("traces", argv, lambda: traces_config(env), run)
