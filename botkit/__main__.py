"""``python -m botkit`` runs the ``botkit`` command."""

import sys

from botkit.cli import main

sys.exit(main())
