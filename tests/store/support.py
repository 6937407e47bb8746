"""Documents and helpers shared by the store's contract modules."""

from __future__ import annotations

import threading
from collections.abc import Callable

DOC_1 = '{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}}}'  # noqa: E501
DOC_2 = '{"flags": {"banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}}}'  # noqa: E501
DOC_3 = '{\n  "flags": {},\n  "$comment": "naïve ☃ – exact bytes"\n}'


def race(workers: int, attempt: Callable[[int], object]) -> list[object]:
    """Run ``attempt(i)`` in ``workers`` threads released together; return results or errors."""
    barrier = threading.Barrier(workers)
    results: list[object] = [None] * workers

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = attempt(i)
        except Exception as exc:  # collected and checked by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def pg_url(schema: str) -> str:
    """The test server's URL with ``schema`` as the search path."""
    return f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
