"""What the extraction workers need in memory before they fork (``flows.runtime.pool`` hands this module
to the forkserver as its preload): the extraction stack and the language model.

Importing it loads py3langid's model (~0.5 s); done once in the forkserver, every worker — including
those that replace recycled ones — starts with it instead of loading it again on its first page.
"""

import newsmill.tasks.extract  # noqa: F401  (trafilatura, lxml, the cleaning code)
from newsmill.tasks.language import load_model

load_model()
