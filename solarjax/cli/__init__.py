"""The `solarjax` command: one module per command group, `program` builds the parser from them and runs it.

Each command imports what it needs when it runs, so `solarjax --help` stays instant.
"""

from solarjax.cli.logs import configure_logging
from solarjax.cli.program import build_parser, main

__all__ = ["build_parser", "configure_logging", "main"]
