"""``python -m hrnet_zoo.cli``: the same as ``hrnet-zoo``."""

import sys

from . import main

sys.exit(main())
