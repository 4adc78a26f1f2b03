"""The Redis backend: huey's Redis storage with leases, for writers on many machines.

huey's `RedisStorage` keeps a list and pops from it: a consumer that dies after the pop loses the
message. `LeasedRedisStorage` changes exactly the verbs at-least-once delivery needs, each one
Lua script (atomic on the server):

- the queue is a sorted set whose member and score are the message's position (from INCR), so
  FIFO is the score and a recovered message goes back exactly where it was;
- `take` (`take_many`) moves the first position(s) into an in-flight sorted set (score: when it
  was taken, on the server's clock), records this queue object's session as their holder, and
  returns them with their bytes; nothing is ever popped and lost;
- `acknowledge` (`acknowledge_many`) removes positions, bytes and leases together, after the index
  commit;
- `recover` puts every leased position back (a starting committer's first step).

Leases never outlive their holder, so order holds across every fault. Each queue object is a
session: a key that lives `queue.lease_timeout` and that the committer's claim thread renews (its
heartbeat). Before taking anything, `take` puts back at its place every lease whose session is
gone (a committer killed or cut off that no longer heartbeats), and every lease of its own
session that it never handed out: a take that ran on the server but whose reply was lost (redis-py
retries a command after a dropped connection, so a take may run twice). A connection error that
reaches the caller forfeits everything in hand, so the next take puts all of it back first.

Messages of at most `SMALL` bytes are also listed in a third set, so the model gate finds the
queued resets without reading the data batches (a backlog can hold gigabytes).

Durability is the server's: with `appendonly yes` and `appendfsync always`, Redis answers a write
only once it is fsynced (docs/operations.md; `mm doctor` warns otherwise). Exactly one committer
per queue across machines holds `claim` (a key with a renewed expiry), beside the local lock on
its index.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import redis
from huey.storage import RedisStorage

from memwal.errors import CommitterBusy, QueueError, QueueUnavailable
from memwal.queue.leased import HueyVerbs, LeasedQueue, as_bytes, leased_huey
from memwal.queue.protocol import Delivery, Lease, QueueCounts, QueueGeneration

SMALL = 4096
LEASE_TIMEOUT = 60.0  # seconds; `queue.lease_timeout`
CLAIM_MS, RENEW_EVERY = 15_000, 5.0
CLAIM_LOST = "MEMWAL_CLAIM_LOST"

_ENQUEUE = """
redis.call('SET', KEYS[5], ARGV[3], 'NX')
local pos = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], pos, ARGV[1])
redis.call('ZADD', KEYS[1], pos, pos)
if string.len(ARGV[1]) <= tonumber(ARGV[2]) then redis.call('ZADD', KEYS[4], pos, pos) end
return pos
"""
# KEYS: pending, data, inflight, owners, this session, claim.
# ARGV: limit, max bytes, session token, lease ms, session key prefix, session label,
#       claim token ('' without a claim), claim ms, then the positions the caller holds.
_TAKE = """
if ARGV[7] ~= '' then
  local holder = redis.call('GET', KEYS[6])
  if not holder then redis.call('SET', KEYS[6], ARGV[7], 'PX', ARGV[8])
  elseif holder ~= ARGV[7] then return redis.error_reply('""" + CLAIM_LOST + """') end
end
local held = {}
for i = 9, #ARGV do held[ARGV[i]] = true end
for _, id in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local owner = redis.call('HGET', KEYS[4], id)
  local lost
  if owner == ARGV[3] then lost = not held[id]
  else lost = (not owner) or redis.call('EXISTS', ARGV[5] .. owner) == 0 end
  if lost then
    redis.call('ZREM', KEYS[3], id)
    redis.call('HDEL', KEYS[4], id)
    redis.call('ZADD', KEYS[1], id, id)
  end
end
redis.call('SET', KEYS[5], ARGV[6], 'PX', ARGV[4])
local firsts = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local taken, total = {}, 0
for i, id in ipairs(firsts) do
  local size = redis.call('HSTRLEN', KEYS[2], id)
  if i > 1 and total + size > tonumber(ARGV[2]) then break end
  total = total + size
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[3], now, id)
  redis.call('HSET', KEYS[4], id, ARGV[3])
  taken[#taken + 1] = id
  taken[#taken + 1] = redis.call('HGET', KEYS[2], id)
end
return taken
"""
_ACK = """
for _, id in ipairs(ARGV) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[5], id)
end
return #ARGV
"""
_RECOVER = """
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for i = 1, #ids, 500 do
  local part = {unpack(ids, i, math.min(i + 499, #ids))}
  local pairs_ = {}
  for _, id in ipairs(part) do pairs_[#pairs_ + 1] = id; pairs_[#pairs_ + 1] = id end
  redis.call('ZADD', KEYS[1], unpack(pairs_))
  redis.call('ZREM', KEYS[2], unpack(part))
end
redis.call('DEL', KEYS[3])
return #ids
"""
# Renew our claim; if it expired while the server was unreachable and nobody took it since,
# take it again. Only a claim another process holds now is lost. While the claim is ours, renew
# our session too: the heartbeat that keeps our leases ours.
# KEYS: claim, session. ARGV: claim token, claim ms, session label, lease ms.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
local kept = 0
if holder == ARGV[1] then kept = redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]); kept = 2 end
if kept ~= 0 then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4]) end
return kept
"""
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeasedRedisStorage(HueyVerbs, RedisStorage):
    """huey's Redis storage, FIFO by position, with take → lease → acknowledge and recover."""

    priority = False

    def __init__(self, name: str = "memwal", lease_timeout: float = LEASE_TIMEOUT,
                 **options: Any) -> None:
        options.setdefault("blocking", False)
        super().__init__(name, clean_name=False, **options)
        prefix = f"memwal:{name}"
        self.pending_key, self.seq_key = f"{prefix}:pending", f"{prefix}:seq"
        self.data_key, self.inflight_key = f"{prefix}:data", f"{prefix}:inflight"
        self.small_key, self.claim_key = f"{prefix}:small", f"{prefix}:committer"
        self.owners_key, self.session_prefix = f"{prefix}:owners", f"{prefix}:session:"
        self.state_prefix = f"{prefix}:state"
        # The queue's epoch (made by its first put or committer: a queue whose keys were lost
        # gets a new one) and the stamp of the index whose committer owns it.
        self.epoch_key, self.index_key = f"{prefix}:epoch", f"{prefix}:index"
        self.claim_lost = threading.Event()
        self.lease_ms = max(1, int(lease_timeout * 1000))
        # This object's session: the holder its leases name, alive while its key is renewed.
        self.session = uuid.uuid4().hex
        self.session_key = self.session_prefix + self.session
        self._label = f"{socket.gethostname()} pid {os.getpid()}"
        self._claim_token = ""
        # Positions handed to the caller and not yet acknowledged or put back. Takes are one at
        # a time: a take puts back our leases that are not in hand, so it must not run while
        # another take's leases are on their way to the caller.
        self._held: set[int] = set()
        self._held_lock, self._take_lock = threading.Lock(), threading.Lock()
        self._scripts = {name: self.conn.register_script(text) for name, text in (
            ("enqueue", _ENQUEUE), ("take", _TAKE), ("ack", _ACK), ("recover", _RECOVER),
            ("renew", _RENEW), ("release", _RELEASE), ("take_over", _TAKE_OVER))}

    def _keys(self) -> list[str]:
        return [self.pending_key, self.data_key, self.inflight_key, self.small_key, self.owners_key]

    def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of our scripts. A connection error that reaches us (redis-py's own retries
        exhausted) may have lost a reply whose effect happened: nothing in hand is trusted any
        more, and the next take puts back every lease of this session first."""
        try:
            return self._scripts[script](keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError):
            self._forget_held()
            raise

    def _forget_held(self, positions: list[int] | None = None) -> None:
        with self._held_lock:
            if positions is None:
                self._held.clear()
            else:
                self._held.difference_update(positions)

    # -- huey's verbs, with leases -----------------------------------------------------------

    def enqueue(self, data: bytes, priority: float | None = None) -> int:  # type: ignore[override]
        return int(self._scripts["enqueue"](
            keys=[self.pending_key, self.seq_key, self.data_key, self.small_key, self.epoch_key],
            args=[data, SMALL, uuid.uuid4().hex]))

    def take_many(self, limit: int, max_bytes: int) -> list[Delivery]:
        if self.claim_lost.is_set():
            raise _claim_lost()
        with self._take_lock:
            with self._held_lock:
                held = sorted(self._held)
            try:
                found = self._run("take", [self.pending_key, self.data_key, self.inflight_key,
                                           self.owners_key, self.session_key, self.claim_key],
                                  [max(1, limit), max_bytes, self.session, self.lease_ms,
                                   self.session_prefix, self._label, self._claim_token, CLAIM_MS,
                                   *held])
            except redis.ResponseError as exc:
                if CLAIM_LOST not in str(exc):
                    raise
                self.claim_lost.set()  # another committer holds the queue now
                raise _claim_lost() from None
            taken = [Delivery(int(found[i]), as_bytes(found[i + 1]))
                     for i in range(0, len(found), 2)]
            with self._held_lock:
                self._held.update(delivery.position for delivery in taken)
            return taken

    def acknowledge_many(self, positions: list[int]) -> None:
        if positions:
            # Out of hand before the write: if it never lands, the next take puts them back.
            self._forget_held(positions)
            self._run("ack", self._keys(), list(positions))

    def recover(self) -> int:
        self._forget_held()
        return int(self._run("recover", [self.pending_key, self.inflight_key, self.owners_key], []))

    # -- what the contract adds --------------------------------------------------------------

    def counts(self) -> QueueCounts:
        with self.conn.pipeline(transaction=True) as pipe:
            pending, inflight = pipe.zcard(self.pending_key).zcard(self.inflight_key).execute()
        return QueueCounts(int(pending), int(inflight))

    def stuck(self, older_than: float) -> list[Lease]:
        seconds, micros = self.conn.time()  # the server's clock, which stamped the leases
        now = seconds + micros / 1e6
        found = self.conn.zrangebyscore(self.inflight_key, "-inf", (now - older_than) * 1000,
                                        withscores=True)
        return sorted((Lease(int(position), score / 1000, now - score / 1000)
                       for position, score in found), key=lambda lease: lease.position)

    def oldest(self) -> Delivery | None:
        first = self.conn.zrange(self.pending_key, 0, 0)
        data = self.conn.hget(self.data_key, first[0]) if first else None
        return None if data is None else Delivery(int(first[0]), as_bytes(data))

    def messages(self, max_bytes: int | None = None) -> Iterator[Delivery]:
        sets = [self.small_key] if max_bytes is not None and max_bytes <= SMALL else \
            [self.pending_key, self.inflight_key]
        positions = sorted({int(p) for key in sets for p in self.conn.zrange(key, 0, -1)})
        for start in range(0, len(positions), 500):
            part = positions[start:start + 500]
            for position, data in zip(part, self.conn.hmget(self.data_key, part)):
                if data is None:
                    continue  # acknowledged meanwhile
                if max_bytes is None or len(data) <= max_bytes:
                    yield Delivery(position, as_bytes(data))

    # -- one committer per queue, across machines --------------------------------------------

    @contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the committer claim of this queue for the block; CommitterBusy naming the holder
        if another process, anywhere, holds it. A holder that dies loses it within seconds."""
        token = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        if not self.conn.set(self.claim_key, token, nx=True, px=CLAIM_MS):
            holder = self.conn.get(self.claim_key)
            if not (holder and _dead_here(holder.decode(errors="replace")) and
                    self._scripts["take_over"](keys=[self.claim_key], args=[holder, token, CLAIM_MS])):
                who = holder.decode(errors="replace").rsplit(" ", 1)[0] if holder else "a process"
                raise CommitterBusy(None, holder=f"{who}, through the Redis queue")
        self._claim_token = token
        stop = threading.Event()
        # The heartbeat: often enough that a live committer's leases never lapse.
        every = min(RENEW_EVERY, self.lease_ms / 3000)

        def renew() -> None:
            while not stop.wait(every):
                try:
                    if not self._scripts["renew"](keys=[self.claim_key, self.session_key],
                                                  args=[token, CLAIM_MS, self._label,
                                                        self.lease_ms]):
                        self.claim_lost.set()  # expired while unreachable: maybe another has it
                        return
                except Exception:  # a passing outage: the next renewal tries again
                    continue

        renewer = threading.Thread(target=renew, name="memwal-claim", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            self._claim_token = ""
            try:
                self._scripts["release"](keys=[self.claim_key], args=[token])
            except Exception:
                pass  # it expires by itself

    def generation(self) -> QueueGeneration:
        with self.conn.pipeline(transaction=True) as pipe:
            epoch, last = pipe.get(self.epoch_key).get(self.seq_key).execute()
        return QueueGeneration(epoch.decode() if epoch else None, int(last or 0))

    def bind(self, index_id: str | None, about: dict[str, Any]) -> dict[str, Any] | None:
        """Stamp the queue with `index_id` (SET NX) and give it an epoch if it has none; the
        stamp of another index if one holds the queue."""
        if index_id is None:  # only look
            held = self.conn.get(self.index_key)
            return None if not held else _stamp(held)
        stamp = json.dumps({"index": index_id, **about})
        with self.conn.pipeline(transaction=True) as pipe:
            pipe.set(self.epoch_key, uuid.uuid4().hex, nx=True)
            pipe.set(self.index_key, stamp, nx=True)
            pipe.get(self.index_key)
            held = pipe.execute()[2]
        found = _stamp(held) if held else {}
        return None if found.get("index") == index_id else found

    def holder(self) -> str | None:
        holder = self.conn.get(self.claim_key)
        return holder.decode(errors="replace").rsplit(" ", 1)[0] if holder else None

    def durability(self) -> str | None:
        """A warning if the server can lose a write it acknowledged (docs/operations.md)."""
        try:
            appendonly = self.conn.config_get("appendonly").get("appendonly")
            fsync = self.conn.config_get("appendfsync").get("appendfsync")
        except redis.ResponseError:
            return ("cannot read the Redis server's persistence settings (CONFIG is disabled): "
                    "make sure it runs with appendonly yes and appendfsync always")
        if appendonly != "yes":
            return ("the Redis server runs without the append-only file: a restart loses every "
                    "queued batch. Set appendonly yes and appendfsync always")
        if fsync != "always":
            return (f"the Redis server fsyncs its append-only file '{fsync}', not on every "
                    "write: a power cut can lose up to a second of acknowledged batches. Set "
                    "appendfsync always")
        return None

    # -- the committed state, for producers on other machines (the queue's Publication) ------

    def publish(self, state: dict[str, Any], files: dict[str, dict[str, Any]],
                gone: dict[str, list[str]], batches: dict[str, list[int]]) -> None:
        with self.conn.pipeline(transaction=True) as pipe:
            for batch_id, counts in batches.items():  # kept a week: for writers waiting on them
                pipe.set(f"{self.state_prefix}:batch:{batch_id}", json.dumps(counts),
                         ex=7 * 24 * 3600)
            for namespace, entries in files.items():
                if entries:
                    pipe.hset(f"{self.state_prefix}:files:{namespace}",
                              mapping={k: json.dumps(v) for k, v in entries.items()})
            for namespace, sources in gone.items():
                if sources:
                    pipe.hdel(f"{self.state_prefix}:files:{namespace}", *sources)
            pipe.set(self.state_prefix, json.dumps(state))
            pipe.execute()

    def published_batches(self, batch_ids: list[str]) -> dict[str, tuple[int, int, int]]:
        found: dict[str, tuple[int, int, int]] = {}
        for start in range(0, len(batch_ids), 500):
            part = batch_ids[start:start + 500]
            values = self.conn.mget([f"{self.state_prefix}:batch:{b}" for b in part])
            found.update({b: tuple(json.loads(v)) for b, v in zip(part, values) if v})
        return found

    def published_state(self) -> dict[str, Any] | None:
        raw = self.conn.get(self.state_prefix)
        return json.loads(raw) if raw else None

    def published_files(self, namespace: str, sources: list[str] | None) -> dict[str, dict[str, Any]]:
        key = f"{self.state_prefix}:files:{namespace}"
        if sources is None:
            return {k.decode(): json.loads(v) for k, v in self.conn.hgetall(key).items()}
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(sources), 500):
            part = sources[start:start + 500]
            found.update({s: json.loads(v) for s, v in zip(part, self.conn.hmget(key, part)) if v})
        return found


RETRIES = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)  # seconds between attempts: about 6 s in all


def redis_queue(url: str, name: str, lease_timeout: float = LEASE_TIMEOUT) -> LeasedQueue:
    """The queue `name` on the Redis server at `url` (redis://, rediss://, unix://).

    A verb that cannot reach the server is retried with backoff (a restart takes seconds),
    then fails with QueueUnavailable. A retried put may land twice: the committer's ledger applies a
    batch once whatever the copies. A retried take that had already run puts its first leases
    back before taking (the module's docstring). `lease_timeout` is how long the leases of a
    session that stopped heartbeating last.
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    def translate(exc: Exception) -> Exception | None:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return QueueUnavailable(f"the Redis queue at {redact(url)} cannot be reached ({exc}).",
                               "Check that the server runs and the URL (queue.url) is right.")
        if isinstance(exc, redis.ResponseError) and "NOAUTH" in str(exc) or \
                isinstance(exc, redis.AuthenticationError):
            return QueueError(f"the Redis server at {redact(url)} refused the password.",
                              "Put the right password in queue.url (MM_QUEUE_URL).")
        return None

    try:
        retry = Retry(ExponentialBackoff(cap=RETRIES[-1], base=RETRIES[0]), len(RETRIES),
                      supported_errors=(redis.ConnectionError, redis.TimeoutError))
        pool = redis.ConnectionPool.from_url(url, socket_timeout=30, socket_connect_timeout=5,
                                             health_check_interval=30, retry=retry)
        huey = leased_huey(name, LeasedRedisStorage, connection_pool=pool,
                           lease_timeout=lease_timeout)
    except Exception as exc:
        raise (translate(exc) or exc) from None
    return LeasedQueue(huey, translate)


def _stamp(held: bytes) -> dict[str, Any]:
    """A queue's index stamp as stored (JSON), or what could be read of a damaged one."""
    try:
        found = json.loads(held)
    except ValueError:
        found = None
    if isinstance(found, dict) and found.get("index"):
        return found
    return {"index": held.decode(errors="replace")}


def _claim_lost() -> QueueError:
    return QueueError("this committer lost its claim on the Redis queue (the server was "
                      "unreachable for longer than the claim lasts, and another committer took it).",
                      "Restart the worker; it takes the claim again if it is free.")


def _dead_here(token: str) -> bool:
    """Whether a claim's holder was a process of this machine that no longer runs (killed): its
    claim can be taken over at once instead of after it expires."""
    parts = token.split()
    if len(parts) != 4 or parts[0] != socket.gethostname() or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def redact(url: str) -> str:
    """The URL without its password: what may be printed, logged or shown."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.hostname or ""
    netloc = user + (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
