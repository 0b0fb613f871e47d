"""`python -m services.page`: serves the built Exec Sandbox page (see server.py)."""

import sys

from services.page.server import main

sys.exit(main())
