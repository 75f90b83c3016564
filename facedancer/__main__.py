"""`python -m facedancer …`: the same as the `facedancer` command."""

import sys

from facedancer.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
