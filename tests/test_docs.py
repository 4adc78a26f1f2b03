"""The docs cannot go stale: the CLI reference is the real --help, and CI runs the README's tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_the_real_help() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert _gen_cli().render() == committed, (
        "docs/cli.md is out of date with the CLI: run `python docs/gen_cli.py` and commit it")


def test_api_reference_matches_the_public_api() -> None:
    spec = importlib.util.spec_from_file_location("gen_api", ROOT / "docs" / "gen_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert module.render() == committed, (
        "docs/api.md is out of date with memwal.__all__: run `python docs/gen_api.py` and commit it")


def test_every_public_name_is_documented_and_importable() -> None:
    import memwal

    for name in memwal.__all__:
        value = getattr(memwal, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"memwal.{name} has no docstring"


def test_cli_modules_import_only_the_public_api_and_cli_helpers() -> None:
    import ast

    allowed = {"memwal", "memwal.cli", "memwal.cli.output", "memwal.cli.common",
               "memwal.cli.queue_cmds", "memwal.cli.deadletter_cmds", "memwal.cli.app",
               "memwal.cli.server_cmds", "memwal.cli.entry", "memwal.cli.fast",
               "memwal.cli.options",  # the arguments both parsers of `mm search` read
               "memwal.cli.progress",  # how a long command shows its progress
               "memwal.localsearch"}  # the one-line protocol the fast path speaks to mm serve
    for path in (ROOT / "src" / "memwal" / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for module in names:
                if module.startswith("memwal"):
                    assert module in allowed, f"{path.name} imports {module}, not the public API"


def test_mcp_tool_reference_matches_the_servers_tools() -> None:
    spec = importlib.util.spec_from_file_location("gen_mcp", ROOT / "docs" / "gen_mcp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "mcp.md").read_text(encoding="utf-8")
    assert module.render() == committed, (
        "docs/mcp.md's tool reference is out of date: run `python docs/gen_mcp.py` and commit it")


def test_readme_and_operations_tables_match_the_code() -> None:
    spec = importlib.util.spec_from_file_location("gen_tables", ROOT / "docs" / "gen_tables.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.REGIONS:
        assert module.render(path) == path.read_text(encoding="utf-8"), (
            f"{path.relative_to(ROOT)}'s configuration, exit-code or model table is out of date "
            "with the code: run `python docs/gen_tables.py` and commit it")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert lines[-1] in readme.splitlines(), (
        f"the README's test command must be the last line of .ci/run, verbatim: {lines[-1]}")
