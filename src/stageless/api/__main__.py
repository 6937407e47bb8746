"""``python -m stageless.api``: the server with settings from ``STAGELESS_*`` variables only.

The same server as ``stageless serve``, without the command line (and without importing the
rest of the CLI, so it starts faster: containers and the test suite use it).
"""

import os
import sys

from stageless.api.server import run
from stageless.settings import Settings

sys.exit(run(Settings.load(os.environ)))
