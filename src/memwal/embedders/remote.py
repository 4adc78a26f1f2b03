"""Remote embedding providers: a server speaking the OpenAI embeddings API, or Ollama.

`openai` posts `{"model", "input": [...], "encoding_format": "float"}` to `{url}/embeddings` and
reads `data[i].embedding` by `data[i].index` (OpenAI, vLLM, TEI, llama.cpp's server, LM Studio);
`ollama` posts `{"model", "input": [...]}` to `{url}/api/embed` and reads `embeddings`, and reads
the weights' digest from `GET {url}/api/tags`. The key comes only from env
`MM_EMBEDDING_API_KEY` (`Settings.api_key`) and is sent as `Authorization: Bearer`; it is never
part of a message, a fingerprint or a repr.

The HTTP client is httpx: one thread-safe client with a connection pool (HTTP/1.1 keep-alive, so
a run of requests does not pay a TCP and TLS handshake each), per-request timeouts split into
connect/read/write, and both a sync and an async API (the Embedder API is synchronous; texts are
split into requests of `embedding.batch_size`, at most `embedding.concurrency` in flight, from a
thread pool). A request is tried up to ATTEMPTS times with exponential backoff on 429 (its
Retry-After honoured), 5xx, timeouts and broken connections; every other failure a user can
cause is one line naming the URL or the setting to fix (memwal.errors: EmbeddingServerError exit
1, EmbeddingConfigError exit 2, ModelChanged exit 2).

The fingerprint (docs/design.md, "Model fingerprint") digests the provider, the model's name, the
dimension, the weights digest where the server reports one (Ollama), and a probe: the vectors of
PROBE_TEXTS, reduced to what stays the same across runs and batch compositions of the same
weights (`probe_digest`). The URL and the key are not in it. It is computed on first access,
which is HTTP. Every later request carries the SENTINEL text (PROBE_TEXTS[0]) after its own
texts; a sentinel vector whose cosine with the probe's is below SENTINEL_MIN_COSINE means other
weights answer behind the name: the request's vectors are dropped, the cached probe too, and
ModelChanged is raised. `embedding.probe_interval` seconds after a probe, `embed` probes again.

Measured (benchmarks/probe_stability.py; docs/guides/embedding-providers.md has the figures):
minilm served over HTTP by tests/embedding_server.py gives bit-identical vectors for 2,000 texts
across 4 batch compositions (alone, batches of 5, of 32 shuffled and reversed): the cosine of a
text with itself stays above 1 - 1.2e-7 (float32 rounding of the dot product). A CPU server is
exact; a GPU server in fp16 is not (~1e-4..1e-3 per component). What matters is how far the 4
probe texts' vectors sit from the digest's boundaries: rounding every component to 2 decimals
would flip at a noise of 1.3e-6 (minilm's nearest component to a rounding boundary), while the
set of each vector's TOP_K = 8 largest-magnitude components (with signs) flips only if the 8th
and 9th magnitudes swap: their smallest gap over the probe texts is 1.8e-3 (minilm) and 1.6e-3
(paraphrase-minilm), so the digest holds up to ~8e-4 of noise, 600 times more. Over 2,000
random texts with simulated noise the top-8 set changed for 0% of 4-text probes at 1e-6, 9% at
1e-4 and 54% at 1e-3: a fixed probe chosen with wide gaps is what makes it robust, and a server
noisier than ~8e-4 needs its own probe check. Other weights move those components entirely;
the sentinel's cosine between minilm and paraphrase-minilm (both 384-d) is 0.20, so the
SENTINEL_MIN_COSINE of 0.999 sits far from both sides.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from memwal.embedders.base import l2_normalise
from memwal.errors import EmbeddingConfigError, EmbeddingServerError, ModelChanged
from memwal.fingerprint import ModelInfo, ModelSpec, fingerprint_of
from memwal.models import Endpoint

if TYPE_CHECKING:
    import httpx

    from memwal.config import Settings

# The probe: fixed texts, embedded when the fingerprint is first needed. The first is also the
# sentinel every later request carries. Never change them: every remote fingerprint would.
PROBE_TEXTS = (
    "memwal probe: the quick brown fox jumps over the lazy dog.",
    "A write-ahead queue makes every write durable before it is applied to the index.",
    "Tomatoes need full sun and deep watering twice a week.",
    "Ganymede, the largest moon of Jupiter, is bigger than the planet Mercury.",
)
SENTINEL = PROBE_TEXTS[0]
TOP_K = 8  # components per probe vector in the digest (module docstring: the measurement)
PROBE_SCHEME = f"top{TOP_K}-sign-v1"  # in the fingerprint: another scheme is another digest
# Same weights: cosine > 1 - 1.2e-7 measured (an fp16 server's noise: ~1 - 1e-5); other
# weights: 0.20 measured (minilm vs paraphrase-minilm).
SENTINEL_MIN_COSINE = 0.999
ATTEMPTS = 5
BACKOFF = 0.2  # seconds before the second attempt; doubled before each later one
MAX_WAIT = 60.0  # the longest Retry-After honoured, in seconds
MAX_SHOWN = 200  # characters of a server's own error text put in a message


@dataclass(frozen=True)
class RemoteOptions:
    """The settings a remote embedder uses (part of its memo key, with its Endpoint)."""

    batch_size: int = 32
    concurrency: int = 4
    timeout: float = 60.0
    dim: int | None = None
    probe_interval: float = 600.0
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, settings: "Settings") -> "RemoteOptions":
        return cls(settings["embedding.batch_size"], settings["embedding.concurrency"],
                   settings["embedding.timeout"], settings["embedding.dim"],
                   settings["embedding.probe_interval"], settings.api_key)


def probe_digest(vectors: np.ndarray) -> str:
    """What the fingerprint takes of the probe's vectors: per vector, the indices of its TOP_K
    components of largest magnitude, with their signs (sorted by index), hashed."""
    parts = []
    for row in np.asarray(vectors, dtype=np.float64):
        top = np.argsort(-np.abs(row), kind="stable")[:TOP_K]
        parts.append(",".join(f"{'-' if row[i] < 0 else '+'}{int(i)}" for i in sorted(top)))
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Probe:
    fingerprint: str
    dim: int
    sentinel: np.ndarray  # the sentinel's normalised vector
    at: float  # time.monotonic() of the probe


class _Retry(Exception):
    """One attempt failed in a way worth another (internal)."""

    def __init__(self, kind: str, detail: str, wait: float | None = None) -> None:
        super().__init__(detail)
        self.kind, self.detail, self.wait = kind, detail, wait


class _BadReply(Exception):
    """The reply is not embeddings; the message says how (internal)."""


class _OpenAIWire:
    path = "/embeddings"

    @staticmethod
    def body(model: str, texts: Sequence[str]) -> dict[str, Any]:
        return {"model": model, "input": list(texts), "encoding_format": "float"}

    @staticmethod
    def rows(reply: Any) -> list[Any]:
        data = reply["data"]
        if not isinstance(data, list):
            raise _BadReply("no list under 'data'")
        indices = [item["index"] for item in data]
        if sorted(indices) != list(range(len(data))):
            raise _BadReply(f"its 'index' fields are not 0..{len(data) - 1}")
        return [item["embedding"] for item in sorted(data, key=lambda item: item["index"])]

    @staticmethod
    def error_text(reply: Any) -> str:
        error = reply.get("error") if isinstance(reply, dict) else None
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or "")
        return str(error or reply.get("message", "") if isinstance(reply, dict) else "")


class _OllamaWire(_OpenAIWire):
    path = "/api/embed"

    @staticmethod
    def body(model: str, texts: Sequence[str]) -> dict[str, Any]:
        return {"model": model, "input": list(texts)}

    @staticmethod
    def rows(reply: Any) -> list[Any]:
        rows = reply["embeddings"]
        if not isinstance(rows, list):
            raise _BadReply("no list under 'embeddings'")
        return rows


WIRES: dict[str, type[_OpenAIWire]] = {"openai": _OpenAIWire, "ollama": _OllamaWire}


class RemoteEmbedder:
    """A model a server computes. Thread-safe; one per (Endpoint, RemoteOptions) per process."""

    def __init__(self, endpoint: Endpoint, options: RemoteOptions) -> None:
        if not endpoint.remote or not endpoint.url:
            raise ValueError(f"not a remote endpoint: {endpoint}")
        self.endpoint = endpoint
        self.name = endpoint.name
        self.url: str = endpoint.url
        self.options = options
        self._wire = WIRES[endpoint.provider]
        self._lock = threading.Lock()  # guards the probe (held while probing)
        self._setup = threading.Lock()  # guards the lazy client and pool
        self._probed: _Probe | None = None
        self._client: httpx.Client | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"RemoteEmbedder({self.endpoint!r})"

    # -- identity ---------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """`embedding.dim` if set (checked on every reply), else what the probe answered."""
        return self.options.dim or self._current().dim

    @property
    def fingerprint(self) -> str:
        """The probe's fingerprint: computed (over HTTP) on first access, then cached."""
        return self._current().fingerprint

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.name, self.dim, self.fingerprint)

    def _current(self) -> _Probe:
        with self._lock:
            if self._probed is None:
                self._probed = self._run_probe()
            return self._probed

    def _run_probe(self) -> _Probe:
        vectors = self._request(PROBE_TEXTS, expect_dim=None)
        dim = int(vectors.shape[1])
        served = self._served_digest() if self.endpoint.provider == "ollama" else None
        spec = ModelSpec(
            provider=self.endpoint.provider, model_id=self.endpoint.model, dim=dim,
            dtype="float32", normalize=True, pooling="server", max_tokens=0,
            weights_digest=f"served:{served or 'none'};probe:{PROBE_SCHEME}:"
                           f"{probe_digest(vectors)}")
        return _Probe(fingerprint_of(spec, self.name), dim, vectors[0].copy(), time.monotonic())

    def _served_digest(self) -> str | None:
        """The weights digest Ollama lists for this model in /api/tags; None if it lists none."""
        try:
            reply = self._call("GET", "/api/tags", None)
            for entry in reply.get("models", []):
                names = {entry.get("name"), entry.get("model")}
                if self.endpoint.model in names or f"{self.endpoint.model}:latest" in names:
                    digest = entry.get("digest")
                    return digest if isinstance(digest, str) and digest else None
        except (AttributeError, TypeError, _BadReply):
            return None
        return None

    # -- embedding --------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised; raises before returning anything on any failure."""
        probe = self._current()
        if not texts:
            return np.zeros((0, probe.dim), dtype=np.float32)
        interval = self.options.probe_interval
        if interval and time.monotonic() - probe.at >= interval:
            probe = self._reprobe(probe)
        size = self.options.batch_size
        batches = [list(texts[i:i + size]) for i in range(0, len(texts), size)]
        parts = self._map(lambda batch: self._checked(batch, probe), batches)
        return np.vstack(parts)

    def _checked(self, texts: list[str], probe: _Probe) -> np.ndarray:
        """One request: `texts` and the sentinel; the texts' vectors if the sentinel's is the
        probe's, else ModelChanged (and nothing of this request is returned)."""
        vectors = self._request([*texts, SENTINEL], expect_dim=probe.dim)
        if float(vectors[-1] @ probe.sentinel) < SENTINEL_MIN_COSINE:
            self._changed(probe)
        return vectors[:-1]

    def _reprobe(self, probe: _Probe) -> _Probe:
        """The probe again (its interval is over): the same fingerprint, or ModelChanged."""
        with self._lock:
            if self._probed is not probe:  # another thread probed meanwhile
                current = self._probed
            else:
                current = self._probed = self._run_probe()
        if current is None or current.fingerprint != probe.fingerprint:
            self._raise_changed(probe.fingerprint, current.fingerprint if current else None)
        assert current is not None
        return current

    def _changed(self, probe: _Probe) -> None:
        """The sentinel departed: drop the probe, probe anew for the message, raise."""
        with self._lock:
            if self._probed is probe:
                self._probed = None
        try:
            now: str | None = self.fingerprint
        except (EmbeddingServerError, EmbeddingConfigError):
            now = None
        self._raise_changed(probe.fingerprint, now)

    def _raise_changed(self, was: str, now: str | None) -> None:
        raise ModelChanged(
            f"the model behind {self.name} now answers with other weights (fingerprint was "
            f"{was}, is now {now or 'unknown'}): nothing of that answer was used.",
            "Run `mm embedding-reset --mode migrate` to move the index to the new weights, or "
            "serve the old ones again under that name.")

    def _map(self, work: Callable[[list[str]], np.ndarray],
             batches: list[list[str]]) -> list[np.ndarray]:
        """`work` over the batches, at most `embedding.concurrency` at once, results in order;
        the first failure is raised once every batch in flight has ended."""
        if len(batches) == 1 or self.options.concurrency == 1:
            return [work(batch) for batch in batches]
        with self._setup:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.options.concurrency, thread_name_prefix="memwal-embed")
            pool = self._pool
        futures = [pool.submit(work, batch) for batch in batches]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
        failed = [f.exception() for f in futures if not f.cancelled() and f.exception()]
        if failed:
            raise failed[0]  # type: ignore[misc]
        return [future.result() for future in futures]

    # -- one request ------------------------------------------------------------------------

    def _request(self, texts: Sequence[str], expect_dim: int | None) -> np.ndarray:
        """The checked, normalised vectors of one request."""
        reply = self._call("POST", self._wire.path, self._wire.body(self.endpoint.model, texts))
        try:
            rows = self._wire.rows(reply)
            if len(rows) != len(texts):
                raise _BadReply(f"{len(rows)} vectors for {len(texts)} texts")
            if not all(isinstance(row, list) for row in rows):
                raise _BadReply("a vector that is not a list of numbers")
            if len({len(row) for row in rows}) != 1:
                raise _BadReply("vectors of different dimensions in one answer")
            matrix = np.asarray(rows, dtype=np.float64)
        except _BadReply as exc:
            raise self._bad_reply(str(exc)) from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise self._bad_reply(f"no embeddings where {self.endpoint.provider}'s API puts "
                                  f"them ({type(exc).__name__})") from None
        if matrix.ndim != 2 or matrix.shape[1] == 0:
            raise self._bad_reply("empty vectors")
        if not np.isfinite(matrix).all():
            raise self._bad_reply("non-finite values (NaN or infinity) in its vectors")
        dim = int(matrix.shape[1])
        if self.options.dim and dim != self.options.dim:
            raise EmbeddingConfigError(
                f"{self.name} at {self.url} answers with {dim}-dimensional vectors, but "
                f"embedding.dim is {self.options.dim}.",
                f"Set embedding.dim to {dim} (or remove it), or configure the model you meant "
                "(embedding.model).")
        if expect_dim is not None and dim != expect_dim:
            raise EmbeddingServerError(
                f"{self.name} at {self.url} answered with {dim}-dimensional vectors, where its "
                f"probe answered with {expect_dim}: nothing of that answer was used.",
                "Check what the server serves under that name; `mm doctor` checks the index.")
        return l2_normalise(matrix.astype(np.float32))

    def _bad_reply(self, detail: str) -> EmbeddingServerError:
        return EmbeddingServerError(
            f"the embedding server at {self.url} sent a reply that is not {self.name}'s "
            f"embeddings: {detail}.",
            f"Is embedding.provider ({self.endpoint.provider}) the API it speaks? Check its log.")

    def _http(self) -> "httpx.Client":
        with self._setup:
            if self._client is None:
                import httpx

                limits = httpx.Limits(max_connections=self.options.concurrency,
                                      max_keepalive_connections=self.options.concurrency)
                headers = {"User-Agent": "memwal"}
                if self.options.api_key:
                    headers["Authorization"] = f"Bearer {self.options.api_key}"
                self._client = httpx.Client(timeout=self.options.timeout, limits=limits,
                                            headers=headers)
            return self._client

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """The JSON answer to one request, retried on 429, 5xx, timeouts and broken
        connections; a one-line MemwalError for anything else or once the attempts are spent."""
        delay, last = BACKOFF, _Retry("down", "no attempt")
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._attempt(method, path, body)
            except _Retry as retry:
                last = retry
            if attempt < ATTEMPTS:
                time.sleep(min(MAX_WAIT, delay if last.wait is None else last.wait))
                delay *= 2
        raise self._gave_up(last)

    def _attempt(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        import httpx

        client = self._http()
        try:
            response = client.request(method, self.url + path, json=body)
        except httpx.TimeoutException:
            raise _Retry("timeout", f"no answer within {self.options.timeout:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry("down", self._scrub(str(exc) or type(exc).__name__)) from None
        status = response.status_code
        if status < 300:
            try:
                return response.json()
            except ValueError:
                raise self._bad_reply("not JSON") from None
        text = self._error_text(response)
        if status == 429:
            raise _Retry("429", text, _retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            held = "the key in env MM_EMBEDDING_API_KEY was refused" if self.options.api_key \
                else "no key was sent"
            raise EmbeddingConfigError(
                f"the embedding server at {self.url} answered {status} ({text}): {held}.",
                "Set env MM_EMBEDDING_API_KEY to a key it accepts (it is read only from the "
                "environment).")
        if status == 404 or (status in (400, 500) and "not found" in text.lower()
                             and "model" in text.lower()):
            fix = (f"Run `ollama pull {self.endpoint.model}` on the server, or fix "
                   "embedding.model (env MM_EMBEDDING_MODEL)."
                   if self.endpoint.provider == "ollama" else
                   "Fix embedding.model (env MM_EMBEDDING_MODEL): the server's GET /models lists "
                   "its names.")
            raise EmbeddingConfigError(
                f"the embedding server at {self.url} has no model {self.endpoint.model!r} "
                f"({status}: {text}).", fix)
        if status >= 500:
            raise _Retry("5xx", f"{status}: {text}")
        raise EmbeddingServerError(
            f"the embedding server at {self.url} answered {status} ({text}).",
            "Check the request limits of its model (a text too long?) and its log.")

    def _error_text(self, response: "httpx.Response") -> str:
        try:
            text = self._wire.error_text(response.json())
        except ValueError:
            text = response.text
        return self._scrub(text or response.reason_phrase or "no reason given")

    def _scrub(self, text: str) -> str:
        """A server's text as a message may show it: one line, at most MAX_SHOWN characters,
        never the key (some servers echo it)."""
        text = " ".join(str(text).split())
        if self.options.api_key:
            text = text.replace(self.options.api_key, "***")
        return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"

    def _gave_up(self, last: _Retry) -> EmbeddingServerError:
        where = f"the embedding server at {self.url}"
        if last.kind == "timeout":
            return EmbeddingServerError(
                f"{where} did not answer within {self.options.timeout:g} s, {ATTEMPTS} times.",
                "Check its load, or raise embedding.timeout or lower embedding.batch_size.")
        if last.kind == "429":
            return EmbeddingServerError(
                f"{where} kept answering 429 (rate limited: {last.detail}), {ATTEMPTS} times.",
                "Lower embedding.concurrency or embedding.batch_size, or try again later.")
        if last.kind == "5xx":
            return EmbeddingServerError(f"{where} failed {ATTEMPTS} times ({last.detail}).",
                                        "Check its log, then run the command again.")
        return EmbeddingServerError(
            f"{where} cannot be reached ({last.detail}), {ATTEMPTS} attempts.",
            "Is it running? Else fix embedding.url (env MM_EMBEDDING_URL).")


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (a number or an HTTP date); None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
