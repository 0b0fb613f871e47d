"""`python -m services automation|pipeline|page|traces`: runs one service, configured by its
environment variables (see the README's configuration table). This is the container's entry
point, so it needs nothing of the operator tool; `opsconductor automation` and
`opsconductor pipeline` run the same functions with command-line flags on top."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

ENTRY_POINTS = {
    "automation": "services.automation.main",
    "pipeline": "services.pipeline.main",
    "page": "services.page.server",
    "traces": "services.traces.main",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ENTRY_POINTS:
        print(f"usage: python -m services {{{','.join(ENTRY_POINTS)}}} [options]", file=sys.stderr)
        return 2
    return importlib.import_module(ENTRY_POINTS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
