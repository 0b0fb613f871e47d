"""OpsConductor Mesh's operator side and its contracts.

- `opsconductor.automation.v1`, `opsconductor.pipeline.v1`: Python stubs generated from proto/
  (named like the proto packages, as grpcurl shows them; never edited by hand);
- `opsconductor.cli`: the `opsconductor` command, one module per command;
- `opsconductor.gateway`, `.stack`, `.release`, `.observability`, `.load`: the libraries the
  commands call (see docs/ARCHITECTURE.md).

The services themselves live in the `services` package and never import the operator side.
"""

import os

# The operator tool forks only to exec a child (opsconductor/stack/processes.py). grpcio's core
# installs fork handlers by default, meant for a fork *without* exec; run by the forking thread,
# which holds the GIL, they can wait forever for a gRPC thread that needs it, and the fork (a
# stack starting, a test's services) hangs. gRPC's advice for fork-then-exec is to turn them off,
# before gRPC is first loaded: every operator module imports this package first.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
