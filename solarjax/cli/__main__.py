"""`python -m solarjax.cli`: the `solarjax` command."""

import sys

from solarjax.cli.program import main

sys.exit(main())
