"""A stream digest computed on a second thread, overlapping encryption.

Sealing and opening hash every byte they carry (the author signs the
digest), and hashing costs about as much as the encryption itself. Both
release the GIL on large buffers (libsodium through cffi, BLAKE2b through
hashlib), so on a machine with two cores the two can run side by side:
`BackgroundDigest` takes the bytes given to `update` onto a bounded queue
that a worker thread hashes, and `digest()` waits for it. The result is
exactly the digest of the same bytes hashed in order.

The edges (`covey.sealfiles`, benchmarks) use it; the core takes any digest.
"""

from __future__ import annotations

import queue
import threading
from typing import Final

from covey.core import crypto

#: Chunks waiting to be hashed: bounds the memory a slow hash can hold.
QUEUE_DEPTH: Final = 8
#: Updates smaller than this are held and sent along with the next one.
SMALL: Final = 4096


class BackgroundDigest:
    """`crypto.stream_digest()`, fed from a bounded queue by a worker thread.

    Small updates (frame lengths) are held and sent with the next large one,
    so each chunk costs one hand-over between the threads.
    """

    def __init__(self) -> None:
        self._hash = crypto.stream_digest()
        self._queue: queue.SimpleQueue[tuple[bytes, bytes] | None] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(QUEUE_DEPTH)
        self._small = b""
        self._worker = threading.Thread(target=self._run, name="covey-digest", daemon=True)
        self._worker.start()
        self._result: bytes | None = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            small, large = item
            if small:
                self._hash.update(small)
            self._hash.update(large)
            self._room.release()

    def update(self, data: bytes, /) -> None:
        if self._result is not None:
            raise ValueError("the digest is finished")
        data = bytes(data)  # immutable: the caller may reuse its buffer
        if len(data) < SMALL:
            self._small += data
            return
        self._room.acquire()
        self._queue.put((self._small, data))
        self._small = b""

    def digest(self) -> bytes:
        if self._result is None:
            self._queue.put(None)
            self._worker.join()
            self._hash.update(self._small)
            self._result = self._hash.digest()
        return self._result

    def close(self) -> None:
        """Stop the worker (after an error, say); the digest is then unusable."""
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()
        if self._result is None:
            self._result = b""
