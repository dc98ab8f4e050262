"""``python -m algoperf_reinit.runner``: see :mod:`algoperf_reinit.runner.run`."""

import sys

from algoperf_reinit.runner.run import main

if __name__ == "__main__":
    sys.exit(main())
