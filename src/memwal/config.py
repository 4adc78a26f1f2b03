"""Configuration: one frozen object built once (defaults < config.json < environment < flags).

Every value remembers where it came from, so `mm config show` can say why it is what it is.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from memwal.errors import ConfigError, HomeNotPrivate
from memwal.safeio import (
    NotRegularFile, TooLarge, home_problem, open_regular, read_regular,
)
from memwal.models import (
    DEFAULT_MODEL, DEFAULT_PROVIDER, DEFAULT_URLS, HASH_NAMES, PROVIDERS, REAL_MODELS, Endpoint,
    HashModel, lookup,
)

DEFAULT_HOME = Path("~/.memwal")
CONFIG_FILE = "config.json"
INDEX_FILE = "index.sqlite3"
QUEUE_FILE = "queue.sqlite3"
LOCK_FILE = "committer.lock"
FAILURE_FILE = "committer-failure.json"  # the last committer's fatal error, until a batch commits
HOME_ID_FILE = "home-id"  # made once, when the home is created: the default queue name comes from it
QUEUE_BACKENDS = ("sqlite", "memory", "redis")
MAX_TOP_K = 1000
API_KEY_ENV = "MM_EMBEDDING_API_KEY"  # the only place the embedding server's key is read from
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def _integer(low: int, high: int) -> Callable[[Any], int]:
    """A parser of whole numbers low..high (a bound keeps SQLite and memory out of reach)."""

    def parse(value: Any) -> int:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected a whole number from {low} to {high:,}")
        return value

    return parse


def _whole(maximum: int) -> Callable[[Any], int]:
    return _integer(1, maximum)


def _finite(low: float, high: float) -> Callable[[Any], float]:
    """A parser of numbers from `low` to `high`; never NaN or infinity."""

    def parse(value: Any) -> float:
        number = float(value) if not isinstance(value, bool) else math.nan
        if not math.isfinite(number) or not low <= number <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return number

    return parse


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    return value.strip()


def _model_name(value: Any) -> str:
    """A model's name: checked against the registry once the provider is known (a remote
    server's names are free text, `BAAI/bge-m3` or `bge-m3:latest`)."""
    name = _text(value)
    if len(name) > 200 or any(ord(c) < 32 or c.isspace() for c in name):
        raise ValueError("expected a model name: up to 200 characters, no spaces")
    return name


def _provider(value: Any) -> str:
    name = _text(value).lower()
    if name not in PROVIDERS:
        raise ValueError(f"unknown embedding provider {name!r}; known: {', '.join(PROVIDERS)}")
    return name


def _embedding_url(value: Any) -> str:
    """An embedding server's base URL; a password in it is refused (the key has its env var)."""
    from urllib.parse import urlsplit

    url = _text(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.password:
        raise ValueError("expected an http:// or https:// URL without a password (the API key "
                         f"goes in env {API_KEY_ENV}, never in the config)")
    return url


def _queue_backend(value: Any) -> str:
    name = _text(value).lower()
    if name not in QUEUE_BACKENDS:
        raise ValueError(f"unknown queue backend {name!r}; known: {', '.join(QUEUE_BACKENDS)}")
    return name


def _redis_url(value: Any) -> str:
    url = _text(value)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return url


def _search_url(value: Any) -> str:
    """A running `mm serve`'s address; the URL it prints (ending in /mcp) is accepted too."""
    from urllib.parse import urlsplit

    url = _text(value).rstrip("/")
    url = url[:-len("/mcp")] if url.endswith("/mcp") else url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.password:
        raise ValueError("expected the http:// or https:// address of a running `mm serve`, "
                         "without a password (the token goes in MM_SEARCH_TOKEN)")
    return url


def _queue_name(value: Any) -> str:
    name = _text(value)
    if not _QUEUE_NAME.match(name):
        raise ValueError("expected 1-100 letters, digits, '.', '_', ':' or '-', starting with a "
                         "letter or digit")
    return name


def _folders(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of folders")
    return tuple(str(Path(v.strip()).expanduser().absolute()) for v in value if v.strip())


def _folder(value: Any) -> str:
    return str(Path(_text(value)).expanduser().absolute())


def _pattern_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of gitignore-style patterns")
    return tuple(v.strip() for v in value if v.strip())


@dataclass(frozen=True)
class Option:
    """One configurable value: its dotted key, parser, default and help.

    README.md's configuration table is rendered from these (docs/gen_tables.py), so `help` is
    markdown: names, commands and `<placeholders>` in backticks.
    """

    key: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    default_text: str = ""  # the default in words, when it is worked out at run time (None here)
    see: str = ""  # the section of the docs that says more (a link in README.md)

    @property
    def env(self) -> str:
        return "MM_" + self.key.replace(".", "_").upper()

    @property
    def fix(self) -> str:
        """What a value that does not parse is told: the help, and the default if it is worked
        out at run time."""
        text = self.help + (f"; default: {self.default_text}" if self.default_text else "")
        return f"{text[0].upper()}{text[1:]}."


OPTIONS: tuple[Option, ...] = (
    Option("embedding.provider", _provider, DEFAULT_PROVIDER,
           "who computes the vectors: `onnx` (the bundled models), `hash` (test models), "
           "`openai` (a server speaking the OpenAI embeddings API: OpenAI, vLLM, TEI, llama.cpp, "
           f"LM Studio) or `ollama`; a remote server's key goes in env `{API_KEY_ENV}`, never in "
           "the config",
           see="docs/guides/embedding-providers.md"),
    Option("embedding.model", _model_name, DEFAULT_MODEL,
           f"embedding model: {', '.join(f'`{name}`' for name in (*REAL_MODELS, HASH_NAMES))}; "
           "with `openai` or `ollama`, the server's model name (`bge-m3`, `BAAI/bge-m3`) "
           "(flag `--model`)"),
    Option("embedding.url", _embedding_url, None,
           "the embedding server's base URL (`openai` and `ollama` only)",
           default_text=", ".join(f"`{url}` ({provider})" for provider, url in DEFAULT_URLS.items())),
    Option("embedding.dim", _whole(65536), None,
           "the dimension a remote model must answer with (checked; none: whatever it answers)"),
    Option("embedding.batch_size", _whole(4096), 32,
           "texts per model call (per request to a remote server)"),
    Option("embedding.concurrency", _whole(64), 4, "requests in flight at once to a remote server"),
    Option("embedding.timeout", _finite(0.1, 3600), 60.0,
           "seconds a remote server may take to answer one request (retried 5 times)"),
    Option("embedding.probe_interval", _finite(0, 1e9), 600.0,
           "seconds after which a long-lived process embeds the probe texts again to check the "
           "weights behind a remote model's name (0: only when it starts); every request checks "
           "a sentinel text as well"),
    Option("index.namespace", _text, "default",
           "namespace for chunks when `--namespace` is not given"),
    Option("index.max_file_bytes", _whole(1 << 30), 5 * 1024 * 1024,
           "files larger than this are skipped"),
    Option("index.ignore", _pattern_list, (".git/", "node_modules/", ".venv/", "__pycache__/"),
           "gitignore-style patterns never indexed (comma-separated in the env)"),
    Option("index.roots", _folders, (),
           "folders the servers and `mm watch` index; MCP tools accept only paths inside them "
           "(comma-separated in the env)"),
    Option("notes.folder", _folder, None,
           "where the MCP tool `mem_add` writes notes (always indexed)",
           default_text="`<home>/notes`"),
    Option("index.chunk_max_chars", _whole(1_000_000), 1500, "sections longer than this are split"),
    Option("index.chunk_min_chars", _whole(1_000_000), 120, "sections shorter than this are merged"),
    Option("queue.backend", _queue_backend, "sqlite",
           "where the write-ahead queue lives: `sqlite` (`<home>/queue.sqlite3`), `redis` (writers "
           "on many machines; the server is `queue.url`) or `memory` (one process; tests)",
           see="docs/operations.md#writers-on-many-machines-the-redis-queue"),
    Option("queue.url", _redis_url, None,
           "the Redis server of the `redis` backend: `redis://`, `rediss://` or `unix://` "
           "(a password in it is never shown)"),
    Option("queue.name", _queue_name, None,
           "the queue's name (the key prefix on a shared backend); homes that share one queue (a "
           "committer and its producers) set the same name",
           default_text="`memwal-<folder>-<id>`, from the id made when the home was created "
           "(`<home>/home-id`), so two homes never share a queue by accident"),
    Option("queue.batch_records", _whole(100_000), 256, "records per queued batch"),
    Option("queue.commit_group", _whole(4096), 64,
           "queued batches the committer commits in one index transaction when they are "
           "already waiting (1: a transaction per batch)"),
    Option("queue.poll_interval", _finite(0.001, 3600), 0.2,
           "seconds an idle committer waits between polls"),
    Option("queue.lease_timeout", _finite(1, 86400), 60.0,
           "seconds a committer that stopped heartbeating keeps its leases before the next "
           "committer takes them back (a live one renews them every few seconds); `mm doctor` "
           "fails on a lease older than this while a committer runs"),
    Option("migration.nice", _integer(0, 19), 10,
           "how much `mm embedding-reset --mode migrate` lowers its own CPU priority (a nice "
           "increment, 0-19), so that searches on the same machine keep their speed while it "
           "embeds", see="docs/guides/model-swap.md#the-migration-path"),
    Option("vectors.merge_at", _whole(100_000_000), 20_000,
           "new vectors after which the committer folds them into the derived vector index "
           "(the first one is built at that size)"),
    Option("vectors.tail_bound", _whole(100_000_000), 5_000,
           "committed vectors the derived vector index may leave outside its graph (searched "
           "exactly) once commits stop: the larger of this and 5% of the vectors. An idle "
           "committer folds a larger tail; one that ends (`mm index`) leaves it to a detached "
           "merge"),
    Option("vectors.segment_size", _whole(100_000_000), 100_000,
           "vectors per file of the derived vector index: a merge holds one such file in memory"),
    Option("search.top_k", _whole(MAX_TOP_K), 10,
           "results returned by `mm search` (flag `--top-k`)"),
    Option("search.rrf_k", _whole(1_000_000), 60, "reciprocal rank fusion constant"),
    Option("search.max_per_doc", _integer(0, MAX_TOP_K), 2,
           "at most this many results from one file (0: no cap; flag `--max-per-doc`)"),
    Option("search.bm25_weight", _finite(0, 1e6), 1.0, "weight of the keyword leg in fusion"),
    Option("search.vector_weight", _finite(0, 1e6), 1.0, "weight of the vector leg in fusion"),
    Option("search.url", _search_url, None,
           "on a home whose index is on another machine (a shared queue): the address of a "
           "`mm serve` there (`http://host:8765`; the URL it prints is accepted too), which "
           "`mm search` and `memwal.search` ask; its `--token`, if any, goes in env "
           "`MM_SEARCH_TOKEN`, never in the config",
           see="docs/operations.md#several-machines-what-runs-where"),
    Option("serve.max_connections", _integer(1, 1_000_000), 1000,
           "connections `mm serve` keeps open at once (kept below the descriptor limit); past it, "
           "the oldest that has not sent a request is closed, else the new one",
           see="docs/operations.md#exposing-mm-serve"),
    Option("serve.header_timeout", _finite(0.1, 3600), 10.0,
           "seconds `mm serve` waits for a request's headers (from the connection or the "
           "previous response) before answering 408 and closing"),
    Option("serve.body_timeout", _finite(0.1, 86400), 60.0,
           "seconds `mm serve` waits for a request's body once its headers are in"),
    Option("serve.max_body_bytes", _integer(1024, 1 << 40), 16 * 1024 * 1024,
           "the largest request body `mm serve` accepts (413 beyond; a body must say its "
           "Content-Length)"),
)
OPTIONS_BY_KEY = {option.key: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one invocation, with the origin of every value."""

    home: Path
    home_source: str
    values: Mapping[str, Any]
    sources: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    # The home's files.
    index_path = property(lambda self: self.home / INDEX_FILE)
    queue_path = property(lambda self: self.home / QUEUE_FILE)
    lock_path = property(lambda self: self.home / LOCK_FILE)
    config_path = property(lambda self: self.home / CONFIG_FILE)
    failure_path = property(lambda self: self.home / FAILURE_FILE)
    home_id_path = property(lambda self: self.home / HOME_ID_FILE)

    # The embedding server's key (env MM_EMBEDDING_API_KEY): never shown, compared or stored.
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def model(self) -> str:
        return self.values["embedding.model"]

    @property
    def endpoint(self) -> Endpoint:
        """The configured model: provider, name, and server URL for a remote provider."""
        return Endpoint.configured(self.values.get("embedding.provider", DEFAULT_PROVIDER),
                                   self.model, self.values.get("embedding.url"))

    @property
    def queue_name(self) -> str:
        """`queue.name`, else a name of this home: two homes never share a queue by accident.

        The default comes from the home's id (`<home>/home-id`, made by `ensure_home`); a home
        that has none yet (never written, or written before ids existed) keeps its old name,
        derived from its path, until a writer gives it an id.
        """
        return self.values.get("queue.name") or default_queue_name(self.home)

    @property
    def legacy_queue_name(self) -> str | None:
        """The path-derived name this home's queue had before home ids, when the default name
        is in use and differs from it (where queued batches of an older memwal may wait)."""
        if self.values.get("queue.name") or read_home_id(self.home) is None:
            return None
        return path_queue_name(self.home)

    @property
    def notes_folder(self) -> Path:
        """Where notes written through the servers go: `notes.folder`, else `<home>/notes`."""
        folder = self.values.get("notes.folder")
        return Path(folder) if folder else self.home / "notes"

    @property
    def roots(self) -> tuple[Path, ...]:
        """The folders servers and watchers index: `index.roots` and the notes folder."""
        configured = tuple(Path(p) for p in self.values.get("index.roots", ()))
        return configured + (() if self.notes_folder in configured else (self.notes_folder,))

    def describe(self) -> dict[str, Any]:
        """The configuration as `mm config show --json` prints it."""
        described: dict[str, dict[str, Any]] = {
            "home": {"value": str(self.home), "source": self.home_source},
            **{
                key: {"value": list(v) if isinstance(v, tuple) else v, "source": self.sources[key]}
                for key, v in self.values.items()
            },
        }
        if self.values.get("queue.url"):
            from memwal.queue.redis import redact

            described["queue.url"]["value"] = redact(self.values["queue.url"])
        if self.values.get("queue.name") is None:
            source = ("default (from the home's id, <home>/home-id)" if read_home_id(self.home)
                      else "default (from the home path: the home has no id yet)")
            described["queue.name"] = {"value": self.queue_name, "source": source}
        if self.values.get("notes.folder") is None:
            described["notes.folder"] = {"value": str(self.notes_folder),
                                         "source": "default (<home>/notes)"}
        return described


def default_queue_name(home: Path) -> str:
    """`memwal-<folder>-<12 hex of the home's id>`; `path_queue_name` for a home without an id.

    Not the path: two machines whose homes have the same path would share a Redis queue, and
    one machine's records would land in the other's index.
    """
    home_id = read_home_id(home)
    if home_id is None:
        return path_queue_name(home)
    return f"memwal-{_folder_part(home)}-{home_id[:12]}"


def path_queue_name(home: Path) -> str:
    """`memwal-<folder>-<8 hex of the home's absolute path>`: the default before home ids."""
    return f"memwal-{_folder_part(home)}-{hashlib.sha256(str(home).encode()).hexdigest()[:8]}"


def _folder_part(home: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", home.name)[:40] or "home"


_HOME_ID = re.compile(r"^[0-9a-f]{32}$")


def read_home_id(home: Path) -> str | None:
    """The id in `<home>/home-id`, None if there is none (a symlink there is refused)."""
    path = home / HOME_ID_FILE
    try:
        text = read_regular(path, max_bytes=256).decode("ascii", "replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except NotRegularFile as exc:
        raise ConfigError(f"{path} is {exc.kind}: memwal never follows links in its home.",
                          "Remove it; the next command that writes makes a new one.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}.",
                          "Check the file's permissions, or pass another --home.") from None
    if not _HOME_ID.match(text):
        raise ConfigError(f"{path} does not hold a home id (32 hex digits).",
                          "Restore it from a backup of this home, or delete it: the home then "
                          "gets a new id, and a new default queue name.")
    return text


def _make_home_id(home: Path) -> str:
    """The home's id, made now if it has none: written whole, 0600, and never over another.

    Two processes creating a home at once: the id is written to a file of this process, then
    linked to `home-id`; the link fails if another process got there first, and its id is kept.
    """
    found = read_home_id(home)
    if found is not None:
        return found
    new_id = secrets.token_hex(16)
    temporary = home / f".{HOME_ID_FILE}.{os.getpid()}.tmp"
    fd = open_regular(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{new_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, home / HOME_ID_FILE)  # never replaces: EEXIST if one is there
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    finally:
        temporary.unlink(missing_ok=True)
    return read_home_id(home) or new_id


def _parse(option: Option, raw: Any, origin: str) -> Any:
    try:
        return option.parse(raw)
    except (ValueError, TypeError) as exc:
        shown = "<hidden>" if option.key == "queue.url" else repr(raw)  # it may hold a password
        raise ConfigError(f"{option.key} = {shown} from {origin}: {exc}.", option.fix) from None


def resolve_home(flag: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, str]:
    """The home folder and where it came from: --home, else MM_HOME, else ~/.memwal."""
    if flag:
        return Path(flag).expanduser().absolute(), "flag --home"
    if environ.get("MM_HOME"):
        return Path(environ["MM_HOME"]).expanduser().absolute(), "env MM_HOME"
    return DEFAULT_HOME.expanduser().absolute(), "default"


def ensure_home(home: Path) -> None:
    """Create the home folder (0700) and its id (`home-id`) if needed, with a clear error when
    we cannot. Every writer calls it before it opens the queue: the default queue name comes
    from the id."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the home folder {home}: {exc.strerror}.",
                          "Pass --home DIR or set MM_HOME to a writable folder.") from None
    if not home.is_dir():
        raise ConfigError(f"the home {home} is not a folder.", "Pass --home DIR or set MM_HOME.")
    refuse_shared_home(home)
    try:
        _make_home_id(home)
    except NotRegularFile as exc:
        raise ConfigError(f"{exc.filename} is {exc.kind}: memwal never follows links in its "
                          "home.", "Remove it (and find out who put it there).") from None
    except OSError as exc:
        raise ConfigError(f"cannot write the home's id in {home}: {exc.strerror}.",
                          "Pass --home DIR or set MM_HOME to a writable folder.") from None


def refuse_shared_home(home: Path) -> None:
    """HomeNotPrivate if another user could replace the home's files (`safeio.home_problem`).

    Writers refuse such a home, as ssh refuses a key others can write: what they would write
    (the queue, the index, the socket of `mm serve`) could be swapped for someone else's.
    Searching it is still allowed (`mm search` then ignores its `serve.sock`, and says so).
    """
    problem = home_problem(home)
    if problem is None:
        return
    fix = (f"Run `chmod go-w {home}` (or `chmod 700 {home}`)." if "writable" in problem else
           "Use a home of your own (--home DIR or MM_HOME), or have its owner give it to you.")
    raise HomeNotPrivate(f"the home {home} {problem}: another user could replace its files, "
                         "so memwal does not write there.", fix)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path, max_bytes=1 << 20).decode("utf-8"))
    except FileNotFoundError:
        return {}
    except NotADirectoryError:
        raise ConfigError(f"the home {path.parent} is not a folder.",
                          "Pass --home DIR or set MM_HOME to a folder.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}).",
                          "Save it as UTF-8 JSON, or delete it.") from None
    except NotRegularFile as exc:
        raise ConfigError(f"{path} is {exc.kind}, not a file.", "Replace it with a JSON file, "
                          "or remove it.") from None
    except TooLarge:
        raise ConfigError(f"{path} is larger than 1 MiB.", "Fix or delete the file.") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}): "
                          f"{exc.msg}.", "Fix or delete the file.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}.",
                          "Check the file's permissions, or pass another --home.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object",
                          'such as {"embedding": {"model": "minilm"}}.')
    flat = _flatten(data)
    if any(key.rsplit(".", 1)[-1] in ("api_key", "key", "token") for key in flat
           if key.startswith("embedding.")):
        raise ConfigError(f"{path}: an embedding server's API key is never kept in config.json.",
                          f"Remove it from the file and set env {API_KEY_ENV} instead.")
    unknown = sorted(set(flat) - set(OPTIONS_BY_KEY))
    if unknown:
        known = ", ".join(OPTIONS_BY_KEY)
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}.", f"Known keys: {known}.")
    return flat


def load_settings(
    home: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The effective settings of one home: defaults < <home>/config.json < MM_* env < flags.

    `home` is a folder (else $MM_HOME, else ~/.memwal); it is not created here. `flags` maps
    dotted keys to values given on a command line (None means "not given"); `environ` defaults
    to os.environ. Every value remembers its source (`Settings.describe()`).

    Raises ConfigError (exit 2) for an unreadable or invalid config.json, an unknown key, or a
    value that does not parse (an unknown model or queue backend included).
    """
    environ = os.environ if environ is None else environ
    home_path, home_source = resolve_home(home, environ)
    file_values = _read_config_file(home_path / CONFIG_FILE)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        value, source = option.default, "default"
        if option.key in file_values:
            value = _parse(option, file_values[option.key], f"{home_path / CONFIG_FILE}")
            source = "config.json"
        if environ.get(option.env):
            value = _parse(option, environ[option.env], f"env {option.env}")
            source = f"env {option.env}"
        if flags and flags.get(option.key) is not None:
            value = _parse(option, flags[option.key], "the command line")
            source = "flag"
        values[option.key] = value
        sources[option.key] = source
    _check_model(values, sources)
    return Settings(home_path, home_source, values, sources,
                    api_key=environ.get(API_KEY_ENV) or None)


def _check_model(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """The model name against its provider: a bundled provider's must be registered (`hash`
    takes only hash models); a remote provider's must be given, not the bundled default."""
    provider, name = values["embedding.provider"], values["embedding.model"]
    origin = sources["embedding.model"]
    option = OPTIONS_BY_KEY["embedding.model"]
    if provider in DEFAULT_URLS:
        if origin == "default":
            raise ConfigError(f"embedding.provider = {provider} needs embedding.model: the "
                              "model's name on the server.",
                              "Set it in config.json or env MM_EMBEDDING_MODEL (e.g. bge-m3).")
        return
    where = "" if origin == "default" else f" from {origin}"
    try:
        entry = lookup(name)
    except ValueError as exc:
        raise ConfigError(f"embedding.model = {name!r}{where}: {exc}.", option.fix) from None
    if provider == "hash" and not isinstance(entry, HashModel):
        raise ConfigError(f"embedding.model = {name!r}{where}: embedding.provider = hash takes "
                          f"only {HASH_NAMES} models.",
                          "Set embedding.provider to onnx, or name a hash model.")
