"""``python -m app`` is the ``exhaust`` command."""

import sys

from app.cli import main

sys.exit(main())
