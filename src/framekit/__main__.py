"""``python -m framekit``: the same as the ``framekit`` command."""

import sys

from .cli import main

sys.exit(main())
