"""Run huey's own storage test suite against memwal's queue storages.

    .venv/bin/python benchmarks/huey_storage_suite.py HUEY_CHECKOUT [--backend sqlite|memory] [--slow]

HUEY_CHECKOUT is a folder holding `huey/tests/base.py` and `huey/tests/test_storage.py`: a
checkout of huey's source, or the installed package's parent folder (huey's wheel ships its
tests, so `.venv/lib/python3.11/site-packages` is the exact installed version). The installed
huey stays the library; only `huey.tests` is taken from the checkout.

The suite is huey's test class for the storage ours extends (`TestSqliteStorage`, or
`TestMemoryStorage`: huey's `StorageTests` mixin plus that storage's own tests), with huey's
default serializer: huey's consumer test sends its own task objects through the
queue, which memwal's msgpack serializer does not carry (memwal never sends task objects). The
results and the intended differences are recorded in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import types
import unittest
from pathlib import Path


def load_huey_tests(checkout: Path) -> types.ModuleType:
    tests = checkout / "huey" / "tests"
    for name in ("base.py", "test_storage.py"):
        if not (tests / name).is_file():
            sys.exit(f"not a huey checkout: {tests / name} is missing")
    import huey

    package = types.ModuleType("huey.tests")
    package.__path__ = [str(tests)]  # the checkout's __init__ (which imports every test) never runs
    sys.modules["huey.tests"] = package
    huey.tests = package  # type: ignore[attr-defined]
    module = importlib.import_module("huey.tests.test_storage")
    print(f"huey {huey.__version__} from {Path(huey.__file__).parent}; tests from {tests}")
    return module


def suite_for(backend: str, huey_tests: types.ModuleType) -> unittest.TestSuite:
    from huey import Huey

    if backend == "sqlite":
        from memwal.queue.sqlite import LeasedSqliteStorage as storage_class
    else:
        from memwal.queue.memory import LeasedMemoryStorage as storage_class  # type: ignore[assignment]

    def make_huey(filename: str) -> Huey:
        options = {"filename": filename, "timeout": 3, "strict_fifo": True} if backend == "sqlite" else {}
        return Huey("huey", utc=False, storage_class=storage_class, **options)

    # huey's own test class for the storage ours extends, with only the storage swapped: its
    # settings (which optional features the storage has) carry over.
    base = huey_tests.TestSqliteStorage if backend == "sqlite" else huey_tests.TestMemoryStorage

    class OurStorage(base):  # type: ignore[misc, valid-type]
        def get_huey(self) -> Huey:
            return make_huey("huey_storage.db")  # TestSqliteStorage's own relative file name

    if backend == "sqlite":
        def fifo_only(self: unittest.TestCase) -> None:
            # It expects a row put with a priority to be taken first: ours are taken in position
            # order alone (docs/architecture.md, "Strict FIFO, no priorities").
            raise unittest.SkipTest("priorities are ignored: strict FIFO by position")

        OurStorage.test_shared_file_queues = fifo_only  # type: ignore[attr-defined]

    loader = unittest.TestLoader()
    return loader.loadTestsFromTestCase(OurStorage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--backend", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--slow", action="store_true", help="also huey's slow tests (a consumer)")
    args = parser.parse_args()
    if args.slow:
        os.environ["HUEY_SLOW_TESTS"] = "1"  # read when huey's test base is imported
    checkout = args.checkout.resolve()
    os.chdir(tempfile.mkdtemp(prefix="memwal-huey-run-"))  # the suite writes relative files
    result = unittest.TextTestRunner(verbosity=2).run(suite_for(args.backend, load_huey_tests(checkout)))
    print(f"{args.backend}: {result.testsRun} run, {len(result.failures)} failed, "
          f"{len(result.errors)} errors, {len(result.skipped)} skipped")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
