"""`python -m memwal` is `mm`."""

from memwal.cli.app import run

run()
