"""``python -m hrnet_zoo.hub_server``: the old name of ``python -m hrnet_zoo.hub.server``, kept working."""

import sys

from .hub.server import HubServer, main

__all__ = ['HubServer', 'main']

if __name__ == '__main__':
    sys.exit(main())
