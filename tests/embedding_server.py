"""A real HTTP embedding server for tests: the OpenAI and Ollama wire formats, real vectors.

    python tests/embedding_server.py --port-file F [--host 127.0.0.1]

Binds port 0, writes the real port to F (atomically) once the socket listens, and serves until
killed. Tests synchronise on that file, never on sleeps (`EmbeddingServer` in conftest.py).

Served models: the bundled ONNX models (`minilm`, `paraphrase-minilm`) and every hashing model
(`hash-<dim>[-<variant>]`), plus aliases: `bge-m3` is `hash-1024`, `e5-large` is `hash-1024-b`
(both 1024-d). An Ollama name may carry `:latest`.

- OpenAI: `POST /v1/embeddings`, `GET /v1/models`; errors `{"error": {"message","type","code"}}`.
- Ollama: `POST /api/embed`, `GET /api/tags` (a per-model `digest`: sha256 of what the name is
  served by, so a swap changes it), `POST /api/show`; errors `{"error": "..."}`.
- Test control: `POST /_control` with JSON; every key is optional:
  - `"faults": [{"kind": K, "times": N, ...}]` appended to the queue of faults; each embedding
    request takes the first fault with times left (`times` -1: forever). Kinds: `401`, `404`,
    `429` (`retry_after` seconds, default 0), `500`, `503`, `slow` (`delay` seconds, then the
    right answer), `dim` (one component short), `nan`, `count` (one vector short), `garbage`
    (a 200 that is not JSON), `grow` (the last vector one component longer).
  - `"aliases": {"bge-m3": "hash-1024-b"}`: swap the weights behind a name.
  - `"api_key": "..."`: from now on, demand `Authorization: Bearer <key>` (401 otherwise).
  - `"clear": true`: drop the faults and zero the counters first.
  `GET /_control`: `{"requests", "texts", "ok_requests", "faults", "aliases"}`: every embedding
  request counted, and the texts of those answered with vectors (the server's own throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import socket
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from memwal.embedders import get_embedder  # noqa: E402
from memwal.errors import UnknownModel  # noqa: E402

ALIASES = {"bge-m3": "hash-1024", "e5-large": "hash-1024-b"}


class State:
    def __init__(self) -> None:
        self.aliases = dict(ALIASES)
        self.faults: list[dict[str, Any]] = []
        self.requests = self.texts = self.ok_requests = 0
        self.api_key: str | None = None

    def target(self, model: Any) -> str | None:
        """The registered model a served name stands for; None if it is not served."""
        if not isinstance(model, str):
            return None
        name = model[:-len(":latest")] if model.endswith(":latest") else model
        name = self.aliases.get(name, name)
        try:
            get_embedder(name)
        except UnknownModel:
            return None
        return name

    def take_fault(self) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault.get("times", -1) != 0:
                if fault.get("times", -1) > 0:
                    fault["times"] -= 1
                return fault
        return None


STATE = State()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # allow_nan: the `nan` fault must put NaN on the wire, as a broken server would.
    return Response(json.dumps(data, allow_nan=True), status, headers,
                    media_type="application/json")


def _error(ollama: bool, status: int, message: str, kind: str = "invalid_request_error",
           code: str | None = None, headers: dict[str, str] | None = None) -> Response:
    if ollama:
        return _json({"error": message}, status, headers)
    return _json({"error": {"message": message, "type": kind, "code": code}}, status, headers)


def _digest(target: str) -> str:
    return hashlib.sha256(f"weights of {target}".encode()).hexdigest()


def _authorised(request: Request) -> bool:
    return STATE.api_key is None or request.headers.get("authorization") == f"Bearer {STATE.api_key}"


async def _embed(request: Request, ollama: bool) -> Response:
    STATE.requests += 1
    if not _authorised(request):
        # As OpenAI does, the refused key is echoed: the client must not show it.
        sent = request.headers.get("authorization", "").removeprefix("Bearer ")
        return _error(ollama, 401, f"Incorrect API key provided: {sent}.",
                      code="invalid_api_key")
    try:
        body = await request.json()
        model, texts = body["model"], body["input"]
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return _error(ollama, 400, "expected {model, input}")
    fault = STATE.take_fault()
    kind = fault["kind"] if fault else None
    if kind in ("401", "404", "429", "500", "503"):
        status = int(kind)
        if status == 404:
            message = (f'model "{model}" not found, try pulling it first' if ollama else
                       f"The model `{model}` does not exist or you do not have access to it.")
            return _error(ollama, 404, message, code="model_not_found")
        headers = {"Retry-After": str(fault.get("retry_after", 0))} if status == 429 else None
        return _error(ollama, status, f"injected {status}", headers=headers,
                      kind="server_error" if status >= 500 else "invalid_request_error")
    if kind == "slow":
        await asyncio.sleep(float(fault.get("delay", 5)))  # type: ignore[index]
    if kind == "garbage":
        return Response("<html><body>502 Bad Gateway</body></html>", 200,
                        media_type="text/html")
    target = STATE.target(model)
    if target is None:
        message = (f'model "{model}" not found, try pulling it first' if ollama else
                   f"The model `{model}` does not exist or you do not have access to it.")
        return _error(ollama, 404, message, code="model_not_found")
    vectors = (await run_in_threadpool(get_embedder(target).embed, texts)).tolist()
    if kind == "dim":
        vectors = [v[:-1] for v in vectors]
    elif kind == "grow" and vectors:
        vectors[-1] = vectors[-1] + [0.0]
    elif kind == "nan" and vectors:
        vectors[0][0] = math.nan
    elif kind == "count" and vectors:
        vectors = vectors[:-1]
    STATE.ok_requests += 1
    STATE.texts += len(texts)
    if ollama:
        return _json({"model": model, "embeddings": vectors, "total_duration": 0,
                      "load_duration": 0, "prompt_eval_count": len(texts)})
    return _json({"object": "list", "model": model,
                  "data": [{"object": "embedding", "index": i, "embedding": v}
                           for i, v in enumerate(vectors)],
                  "usage": {"prompt_tokens": 0, "total_tokens": 0}})


async def openai_embeddings(request: Request) -> Response:
    return await _embed(request, ollama=False)


async def ollama_embed(request: Request) -> Response:
    return await _embed(request, ollama=True)


def _served_names() -> list[str]:
    return ["minilm", "paraphrase-minilm", *STATE.aliases]


async def openai_models(request: Request) -> Response:
    if not _authorised(request):
        return _error(False, 401, "Incorrect API key provided.", code="invalid_api_key")
    return _json({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "memwal-tests"}
        for name in _served_names()]})


async def ollama_tags(request: Request) -> Response:
    models = []
    for name in _served_names():
        target = STATE.target(name)
        assert target is not None
        models.append({"name": f"{name}:latest", "model": f"{name}:latest",
                       "modified_at": "2025-01-01T00:00:00Z", "size": 1,
                       "digest": _digest(target),
                       "details": {"format": "gguf", "family": "bert"}})
    return _json({"models": models})


async def ollama_show(request: Request) -> Response:
    try:
        model = (await request.json())["model"]
    except (ValueError, KeyError, TypeError):
        return _error(True, 400, "expected {model}")
    target = STATE.target(model)
    if target is None:
        return _error(True, 404, f"model '{model}' not found")
    dim = get_embedder(target).dim
    return _json({"modelfile": f"# served by {target}", "details": {"family": "bert"},
                  "model_info": {"bert.embedding_length": dim}})


async def control(request: Request) -> Response:
    if request.method == "POST":
        body = await request.json()
        if body.get("clear"):
            STATE.faults.clear()
            STATE.requests = STATE.texts = STATE.ok_requests = 0
        STATE.faults.extend(dict(f) for f in body.get("faults", []))
        STATE.aliases.update(body.get("aliases", {}))
        if "api_key" in body:
            STATE.api_key = body["api_key"]
    return _json({"requests": STATE.requests, "texts": STATE.texts,
                  "ok_requests": STATE.ok_requests, "faults": STATE.faults,
                  "aliases": STATE.aliases})


app = Starlette(routes=[
    Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
    Route("/v1/models", openai_models, methods=["GET"]),
    Route("/api/embed", ollama_embed, methods=["POST"]),
    Route("/api/tags", ollama_tags, methods=["GET"]),
    Route("/api/show", ollama_show, methods=["POST"]),
    Route("/_control", control, methods=["GET", "POST"]),
])


def main() -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, 0))
    sock.listen(128)  # connections made before uvicorn accepts wait in the backlog
    temporary = args.port_file.with_name(args.port_file.name + ".tmp")
    temporary.write_text(str(sock.getsockname()[1]))
    os.replace(temporary, args.port_file)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
