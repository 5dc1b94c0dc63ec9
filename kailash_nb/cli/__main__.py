"""``python -m kailash_nb.cli``: the same as the ``kailash-nb`` command."""

import sys

from kailash_nb.cli import main

sys.exit(main())
