"""A check shared by the tests: that a call runs without holding the GIL."""

import threading
import time
from contextlib import contextmanager


@contextmanager
def runs_without_the_gil():
    """A ticker thread counts milliseconds while the body runs; with the GIL held by the body
    it would not run at all. Asserts about one tick per millisecond (a fifth, for a busy CI)."""
    ticks, done = [0], threading.Event()

    def tick():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    ticker = threading.Thread(target=tick)
    ticker.start()
    start = time.time()
    try:
        yield
    finally:
        elapsed = time.time() - start
        done.set()
        ticker.join()
    assert ticks[0] > 0.2 * elapsed * 1000
