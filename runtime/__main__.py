"""``python -m flowc.runtime ...``: see :mod:`flowc.runtime.entry`."""

import sys

from flowc.runtime.entry import main

if __name__ == "__main__":
    sys.exit(main())
