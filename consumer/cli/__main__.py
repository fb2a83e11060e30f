"""``python -m consumer.cli``: the same entry point as the ``bullflag`` script."""

import sys

from consumer.cli import main

sys.exit(main())
