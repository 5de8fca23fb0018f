"""``python -m newsmill`` = the ``newsmill`` command."""

import sys

from newsmill.cli import main

sys.exit(main())
