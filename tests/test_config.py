"""Configuration precedence: defaults < config.json < environment < flags, with provenance."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from memwal.config import OPTIONS_BY_KEY, ConfigError, load_settings

SRC = Path(__file__).resolve().parent.parent / "src" / "memwal"
# File names that begin like a configuration section; not keys.
FILE_NAMES = {"index.sqlite3", "queue.sqlite3", "serve.sock", "notes.lock", "search.html"}


def write(home: Path, data: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(data))


def test_defaults_when_nothing_is_configured(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "h", environ={})
    assert settings.model == "minilm"
    assert settings.sources["embedding.model"] == "default"
    assert settings["queue.batch_records"] == 256


def test_file_beats_default_env_beats_file_flag_beats_env(tmp_path: Path) -> None:
    home = tmp_path / "h"
    write(home, {"embedding": {"model": "hash-384"}, "search": {"top_k": 7}})
    settings = load_settings(home, environ={})
    assert (settings.model, settings.sources["embedding.model"]) == ("hash-384", "config.json")
    settings = load_settings(home, environ={"MM_EMBEDDING_MODEL": "hash-384-b"})
    assert (settings.model, settings.sources["embedding.model"]) == ("hash-384-b", "env MM_EMBEDDING_MODEL")
    assert settings["search.top_k"] == 7
    settings = load_settings(home, flags={"embedding.model": "hash-16"},
                             environ={"MM_EMBEDDING_MODEL": "hash-384-b"})
    assert (settings.model, settings.sources["embedding.model"]) == ("hash-16", "flag")


def test_home_precedence_flag_env_default(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "a", environ={"MM_HOME": str(tmp_path / "b")}).home == tmp_path / "a"
    settings = load_settings(None, environ={"MM_HOME": str(tmp_path / "b")})
    assert (settings.home, settings.home_source) == (tmp_path / "b", "env MM_HOME")
    assert load_settings(None, environ={}).home == Path("~/.memwal").expanduser()


def test_unknown_key_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"embedding": {"modle": "minilm"}})
    with pytest.raises(ConfigError, match="unknown key.*embedding.modle.*Known keys"):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize("data, message", [
    ({"embedding": {"model": "gpt-9"}}, "unknown embedding model"),
    ({"queue": {"batch_records": 0}}, "whole number from 1 to 100,000"),
    ({"queue": {"batch_records": "many"}}, "whole number from 1 to 100,000"),
    ({"search": {"bm25_weight": -1}}, "number from 0 to 1e"),
    ({"queue": {"poll_interval": 1e300}}, "number from 0.001 to 3600"),
])
def test_bad_values_name_the_key_and_the_fix(tmp_path: Path, data: object, message: str) -> None:
    write(tmp_path, data)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MM_QUEUE_BATCH_RECORDS"):
        load_settings(tmp_path, environ={"MM_QUEUE_BATCH_RECORDS": "-3"})


def test_invalid_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_settings(tmp_path, environ={})


def test_describe_reports_every_value_and_source(tmp_path: Path) -> None:
    described = load_settings(tmp_path, environ={"MM_SEARCH_TOP_K": "3"}).describe()
    assert described["search.top_k"] == {"value": 3, "source": "env MM_SEARCH_TOP_K"}
    assert described["home"]["source"] == "flag --home"


def test_every_configuration_key_named_in_the_source_is_declared() -> None:
    """Every string in src/ that reads like `<section>.<name>` is a declared key: whatever the
    form of access (`settings["…"]`, `settings.values.get("…")`, `described["…"]`, the flags
    given to `load_settings`, `localsearch.SEARCH_KEYS`), a misspelt key would fail only at run
    time, or be ignored without a word (a flag, a `.get`)."""
    sections = "|".join(sorted({key.split(".")[0] for key in OPTIONS_BY_KEY}))
    looks_like_a_key = re.compile(rf"^({sections})\.\w+$")
    named: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and looks_like_a_key.match(node.value):
                named.setdefault(node.value, []).append(f"{path.relative_to(SRC)}:{node.lineno}")
    unknown = {key: where for key, where in named.items()
               if key not in OPTIONS_BY_KEY and key not in FILE_NAMES}
    assert not unknown, ("not configuration keys: declare them in memwal.config.OPTIONS (or, "
                         f"for a file name, add it to FILE_NAMES here): {unknown}")
    assert set(OPTIONS_BY_KEY) <= set(named)  # the scan sees every key (it is not vacuous)
