"""``python -m framekit``: the same as the ``framekit`` command."""

import sys

from .apps.cli import main

sys.exit(main())
