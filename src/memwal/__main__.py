"""`python -m memwal` is `mm`."""

from memwal.cli.entry import run

run()
