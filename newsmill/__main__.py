"""``python -m newsmill`` = the ``newsmill`` command."""

import sys

from newsmill.flows.cli import main

sys.exit(main())
