from memwal.cli.app import main, run

__all__ = ["main", "run"]
