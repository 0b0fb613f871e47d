"""Load: the benchmark, h2load, the asyncio load generator and the gRPC-Web client."""
