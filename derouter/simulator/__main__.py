"""Run the simulated upstream: python -m derouter.simulator --account-key KEY [...]."""

import sys

from .server import main

sys.exit(main())
