"""A producer process for the crash tests: enqueues batches and logs each one once it is durable.

Usage: python crash_producer.py HOME LOG SEED BATCHES [SLEEP] [BAD_RATIO]

Every item's vector encodes (producer seed, batch number, item number), so the test can tell which
enqueued version of a key ended up in the index. A fraction of items (BAD_RATIO) use model B
(hash-384-b) instead of A (hash-384). The log gets, before the enqueue,
`intent <batch_id> <n_items> <n_b> <seed> <batch_no> <A key=item_no,...> <B key=item_no,...>`
(per key and model, the last item that wrote it; `-` for none) and `done <batch_id> <position>`
once the enqueue returned, so a batch whose `done` was lost to a SIGKILL is still accounted for.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import numpy as np

from memwal.embedders import get_embedder
from memwal.config import load_settings
from memwal.queue import Role, open_queue
from memwal.records import Batch, ChunkKey, Producer, Upsert, encode_batch
from memwal.vectors import to_bytes

KEYS = 40  # a small key space shared by all producers, so versions of one key compete


def vector_for(seed: int, batch_no: int, item_no: int, dim: int = 384) -> np.ndarray:
    vector = np.zeros(dim, dtype=np.float32)
    vector[0], vector[1], vector[2] = seed, batch_no, item_no
    return vector / np.linalg.norm(vector) if vector.any() else vector + 1 / np.sqrt(dim)


def _pairs(last: dict[int, int]) -> str:
    return ",".join(f"{k}={i}" for k, i in sorted(last.items())) or "-"


def main() -> None:
    home, log_path, seed, batches = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.01
    bad_ratio = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
    rng = random.Random(seed)
    good, bad = get_embedder("hash-384"), get_embedder("hash-384-b")
    queue = open_queue(load_settings(home, environ={}), Role.PRODUCER)
    producer = Producer("crash-test", os.getpid(), f"crash_producer {seed}")
    with open(log_path, "a", buffering=1) as log:
        for batch_no in range(batches):
            items, n_bad, last_good, last_bad = [], 0, {}, {}
            for item_no in range(rng.randint(5, 30)):
                key_no = rng.randrange(KEYS)
                model = bad if rng.random() < bad_ratio else good
                n_bad += model is bad
                (last_good if model is good else last_bad)[key_no] = item_no
                items.append(Upsert(
                    key=ChunkKey("crash", f"/keys/{key_no}.md", f"{key_no:064x}", 1), end_line=1,
                    heading_path=(), content=f"key {key_no}", tags=(), fingerprint=model.fingerprint,
                    dim=384, vector=to_bytes(vector_for(seed, batch_no + 1, item_no + 1))))
            batch = Batch(items=tuple(items), producer=producer)
            log.write(f"intent {batch.id} {len(items)} {n_bad} {seed} {batch_no} "
                      f"{_pairs(last_good)} {_pairs(last_bad)}\n")
            os.fsync(log.fileno())
            position = queue.put(encode_batch(batch))
            log.write(f"done {batch.id} {position}\n")
            os.fsync(log.fileno())
            time.sleep(pause * rng.random())


if __name__ == "__main__":
    main()
