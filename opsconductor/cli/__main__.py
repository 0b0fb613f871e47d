"""`python -m opsconductor.cli`: the `opsconductor` command."""

import sys

from opsconductor.cli.main import main

sys.exit(main())
