"""`python -m solarjax`: the `solarjax` command."""

import sys

from solarjax.cli import main

sys.exit(main())
