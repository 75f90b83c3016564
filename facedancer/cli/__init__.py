"""Command-line interface: `facedancer SUBCOMMAND`; each subcommand lives in its own module."""
