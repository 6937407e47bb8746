"""Dark launch: copies of user requests to the candidate, compared with stable's answers.

The user's request is served by stable exactly as without shadowing; the copy rides beside it:

- :meth:`ShadowDispatcher.offer` starts the copy at once when fewer than ``CONCURRENCY`` copies
  are in flight, else puts it on a bounded queue; a full queue drops the copy
  (``dropped_queue_full``), never the user's request.
- Copies go to the candidate over the dispatcher's own connection pools (never the pools user
  requests use). A copy is driven by callbacks (:class:`_Copy` is the connection's owner and
  parses the answer with httptools), not by a task per copy: no coroutine or future per copy;
  one timer per worker, set for the earliest deadline of the copies in flight, enforces
  ``shadow.timeout_s`` (``dropped_timeout``), and a refused or reset connection counts as
  ``dropped_error``. A slow or dead candidate costs copies, not user latency.
- For the noise filter, copies of safe requests (GET, HEAD, OPTIONS) are also sent a second time
  to stable (Diffy's "secondary"): the first ``noise_first`` of each endpoint in this worker,
  then ``noise_share`` percent of them (none at all with a ``noise_share`` of 0). Differences
  between two stable answers measure how non-deterministic each field is; the report scales
  them to every request compared. A write opted into shadowing goes to the candidate only,
  never a second time to stable.
- The stable answer the user got is captured (up to ``max_body_bytes``) by the user's exchange;
  once every answer is in, they are compared in the worker's diff collector
  (:mod:`stageless.diff`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Final

import httptools

from stageless.analysis.batch import TrafficClass, Version
from stageless.diff import CompareRules, DiffCollector, Lifted, lift
from stageless.proxy.heads import header_fields, plain_answer
from stageless.proxy.pool import Pool, UpstreamConnection

if TYPE_CHECKING:
    from stageless.proxy.config import ShadowConfig
    from stageless.proxy.exchange import Exchange
    from stageless.proxy.runtime import RouteRuntime, ServiceRuntime
    from stageless.proxy.stats import Series, ShadowCounters
    from stageless.proxy.worker import Worker

log = logging.getLogger("stageless.proxy")

#: Copies in flight at once per worker (each waits for the candidate's answer).
CONCURRENCY = 256

#: The least time between two sweeps for copies past their deadline: a copy may be dropped up
#: to this long after its ``shadow.timeout_s``, when an earlier one was dropped just before.
SWEEP_FLOOR_S: Final = 0.01

#: The key of a route's series that counts the copies' answers (a constant: reading an enum
#: member from compiled code is a generic attribute lookup).
_CANDIDATE_SHADOW: Final = (Version.CANDIDATE, TrafficClass.SHADOW)

#: The methods whose copies may be pipelined (``shadow.pipeline``): safe, and each answer
#: framed by itself (not HEAD: its answer has a length and no body).
_PIPELINED_METHODS: Final = frozenset({b"GET", b"OPTIONS"})

#: The methods whose copies may also go to stable a second time (the noise sample): stable is
#: the production service, so only safe methods, whatever a route opts into shadowing.
_NOISE_METHODS: Final = frozenset({b"GET", b"HEAD", b"OPTIONS"})

#: Endpoints whose copies a dispatcher counts for ``noise_first`` (then it forgets them all at
#: once, and their next copies are sampled as if new).
NOISE_FIRST_ENDPOINTS: Final = 4096

#: Paths whose endpoint names a dispatcher remembers (then it forgets them all at once), and
#: the longest path it remembers (longer ones are named every time).
ENDPOINT_NAMES: Final = 4096
ENDPOINT_PATH_BYTES: Final = 256

Headers = list[tuple[bytes, bytes]]


def endpoint_of(method: bytes, path: bytes) -> bytes:
    """The diff report's endpoint name: method and path, ids replaced by ``{id}``.

    A path segment that is a number, a UUID or a long hexadecimal string names one resource of
    many (``/orders/1234``), so ``GET /orders/1234`` and ``GET /orders/99`` share one endpoint.
    """
    segments = path.split(b"/")
    for index, segment in enumerate(segments):
        if segment and (segment.isdigit() or _looks_like_id(segment)):
            segments[index] = b"{id}"
    return method + b" " + b"/".join(segments)


def _looks_like_id(segment: bytes) -> bool:
    if len(segment) < 16:
        return False
    stripped = segment.replace(b"-", b"")
    return all(c in b"0123456789abcdefABCDEF" for c in stripped)


class EndpointNames:
    """The diff report's endpoint names (``"<service> <method> <path with {id}>"``) of the
    paths seen, remembered: naming a path splits it and tests each segment, about 3,000
    instructions per copied request, where a path seen before costs a dictionary lookup.
    At most :data:`ENDPOINT_NAMES` paths of at most :data:`ENDPOINT_PATH_BYTES` bytes are
    remembered, so paths with ids in them (each new) cost at most one insertion each."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[tuple[str, bytes, bytes], str] = {}

    def name(self, service: str, method: bytes, path: bytes) -> str:
        key = (service, method, path)
        found = self._names.get(key)
        if found is not None:
            return found
        found = f"{service} {endpoint_of(method, path).decode('latin-1')}"
        if len(path) <= ENDPOINT_PATH_BYTES:
            if len(self._names) >= ENDPOINT_NAMES:
                self._names.clear()
            self._names[key] = found
        return found

    def __len__(self) -> int:
        return len(self._names)


class FirstCopies:
    """Copies counted by endpoint up to a number (``shadow.noise_first``: each endpoint's
    first copies all get a second stable sample). At most :data:`NOISE_FIRST_ENDPOINTS`
    endpoints are remembered; then they are all forgotten at once, and their next copies count
    as first ones again (a few more samples, never fewer)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        # Endpoints that reached the number stay in, so that they are not counted again.
        self._counts: dict[str, int] = {}

    def take(self, endpoint: str, first: int) -> bool:
        """Whether this copy is one of the endpoint's first ``first`` (and count it)."""
        counted = self._counts.get(endpoint, 0)
        if counted >= first:
            return False
        if not counted and len(self._counts) >= NOISE_FIRST_ENDPOINTS:
            self._counts.clear()
        self._counts[endpoint] = counted + 1
        return True

    def __len__(self) -> int:
        return len(self._counts)


class Answer:
    """One captured answer: status, lower-case headers, body (bounded).

    An answer read without a parser (:func:`~stageless.proxy.heads.plain_answer`) keeps its
    head as it came (``head``) and makes its header list only when asked (:meth:`fields`):
    two answers with the same head bytes have the same headers, which is all the usual
    comparison needs to know.
    """

    __slots__ = ("body", "head", "headers", "size", "status", "too_large")

    def __init__(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.head = b""  # status line and header lines, without the blank line; b"": parsed
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False

    def take_head(self, status: int, head: bytes) -> None:
        """A plain answer's status and head (see the class docstring)."""
        self.status = status
        self.head = head

    def fields(self) -> Headers:
        """The header fields, names in lower case (made from ``head`` on first use)."""
        head = self.head
        if head:
            self.head = b""
            lines = (head + b"\r\n").split(b"\n")
            self.headers = [(name.lower(), value) for name, value in header_fields(lines)]
        return self.headers

    def add_body(self, data: bytes, limit: int) -> None:
        self.size += len(data)
        if self.size > limit:
            self.too_large = True
            self.body = []
        elif not self.too_large:
            self.body.append(data)

    def data(self) -> bytes:
        """The body's bytes (kept in the pieces they came in)."""
        body = self.body
        return body[0] if len(body) == 1 else b"".join(body)

    def lifted(self, rules: CompareRules) -> Lifted:
        return lift(self.status, self.fields(), self.data(), rules)


def take_plain(
    answer: Answer, data: bytes, start: int, found: tuple[int, int, int], limit: int
) -> None:
    """Fill ``answer`` from the plain answer at ``data[start]`` that
    :func:`~stageless.proxy.heads.plain_answer` found: what the parser's callbacks would have
    put in it."""
    status, body_start, body_end = found
    answer.take_head(status, data[start : body_start - 4])
    if body_end > body_start:
        answer.add_body(data[body_start:body_end], limit)


def same_lift(a: Answer, b: Answer, wanted: frozenset[str | bytes] | None) -> bool:
    """Whether :func:`stageless.diff.lift` reads the same from both answers, so that they
    cannot differ (nor be told apart by the noise filter).

    ``lift`` reads the status, the body's bytes and, in order, the headers whose lower-case
    name is in ``wanted`` (``CompareRules.read_headers``; every header when ``None``); the
    answers' header names are lower case already (``ShadowJob.primary_head``,
    ``_Copy.on_header``, ``_Pipe.on_header``, ``Answer.fields``), and two heads kept as they
    came that are equal bytes have equal fields. Equal reads give equal lifts:
    tests/proxy/test_shadow.py checks it against ``lift`` itself. A ``Date`` that moved on
    between the answers changes nothing unless the rules compare it.
    """
    if a.status != b.status or a.size != b.size:
        return False
    if a.data() != b.data():
        return False
    if a.head and a.head == b.head:  # both read without a parser, the same head
        return True
    a_fields, b_fields = a.fields(), b.fields()
    if a_fields == b_fields:  # the usual case, compared in C: then every read is equal
        return True
    if wanted is None:
        return False
    return [h for h in a_fields if h[0] in wanted] == [h for h in b_fields if h[0] in wanted]


class ShadowJob:
    """One copied request and the answers it collects (user's, candidate's, second stable's)."""

    __slots__ = (
        "body",
        "body_done",
        "candidate",
        "copies",
        "counters",
        "deadline",
        "dispatcher",
        "endpoint",
        "finished",
        "limit",
        "line",
        "method",
        "noise",
        "outstanding",
        "primary",
        "request",
        "route",
        "secondary",
        "series",
        "service",
        "started",
        "waiting_body",
    )

    def __init__(  # noqa: PLR0913 (the copy's facts, set once by the router)
        self,
        dispatcher: ShadowDispatcher,
        service: ServiceRuntime,
        route: RouteRuntime,
        endpoint: str,
        method: bytes,
        line: bytes,
        request: bytes,
        noise: bytes | None,
        counters: ShadowCounters,
        limit: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.service = service
        self.route = route
        self.endpoint = endpoint
        self.method = method
        self.line = line  # the request line's method and target, for the diff's examples
        self.request = request
        self.noise = noise
        self.counters = counters
        self.limit = limit
        self.series: Series = route.series[_CANDIDATE_SHADOW]
        self.body: list[bytes] = []
        self.body_done = False
        self.waiting_body = False
        self.primary: Answer | None = Answer()
        self.candidate: Answer | None = None
        self.secondary: Answer | None = None
        # answers still awaited: the user's, the candidate's, the second stable's if any
        self.outstanding = 3 if noise is not None else 2
        self.finished = False
        self.started = 0.0
        self.deadline = 0.0
        self.copies: list[_Copy] = []

    # called by the user's exchange ------------------------------------------------------

    def request_body(self, data: bytes) -> None:
        self.body.append(data)

    def request_complete(self) -> None:
        self.body_done = True
        if self.waiting_body:
            self.waiting_body = False
            self.dispatcher.send(self)

    def primary_head(self, status: int, headers: Headers) -> None:
        primary = self.primary
        if primary is not None:
            primary.status = status
            primary.headers = [(n.lower(), v) for n, v in headers]

    def primary_plain_head(self, status: int, head: bytes) -> None:
        """The head of a plain answer, as it came (``Answer.take_head``)."""
        primary = self.primary
        if primary is not None:
            primary.take_head(status, head)

    def primary_body_part(self, data: bytes) -> None:
        if self.primary is not None:
            self.primary.add_body(data, self.limit)

    def primary_done(self) -> None:
        self.answered()

    def primary_failed(self) -> None:
        self.primary = None  # nothing to compare against
        self.answered()

    # called by the copies -----------------------------------------------------------------

    def answered(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.dispatcher.compare(self)


class _Owner:
    """What both owners of a shadow connection (:class:`_Copy`, :class:`_Pipe`) do alike as
    ``pool.Owner``: a lost connection fails what waits on it; copies ignore backpressure (a
    request is written whole, and an answer is read at once)."""

    __slots__ = ("conn",)

    conn: UpstreamConnection | None

    def fail(self, *, timeout: bool) -> None:
        raise NotImplementedError

    def abort_connection(self) -> None:
        """Reset the connection (never pooled again: an answer may be on its way)."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.owner = None
            conn.abort()

    def upstream_lost(self, exc: Exception | None) -> None:
        self.conn = None
        self.fail(timeout=False)

    def upstream_pause_writing(self) -> None:
        pass

    def upstream_resume_writing(self) -> None:
        pass


class _Copy(_Owner):
    """The owner of an upstream connection while one copy's answer arrives (pool.Owner)."""

    __slots__ = ("answer", "dispatcher", "head_only", "job", "parser", "pipe", "secondary")

    def __init__(
        self, dispatcher: ShadowDispatcher, job: ShadowJob, *, secondary: bool, head_only: bool
    ) -> None:
        self.dispatcher = dispatcher
        self.job = job
        self.secondary = secondary
        self.head_only = head_only
        self.answer = Answer()
        # The parser holds bound methods of this copy, and the job holds its copies: reference
        # cycles, dropped when the copy ends (``complete``, ``fail``) and when the job does
        # (``compare``), so that a copy is freed at once rather than by the cyclic collector,
        # whose collections of that garbage stalled the loop for milliseconds with every
        # request copied.
        self.parser: httptools.HttpResponseParser | None = None
        self.conn: UpstreamConnection | None = None
        self.pipe: _Pipe | None = None  # when sent back to back with others (pipelined)

    def send(self, conn: UpstreamConnection, data: bytes) -> None:
        self.conn = conn
        conn.owner = self
        conn.write(data)

    # pool.Owner
    def upstream_data(self, data: bytes) -> None:
        if self.conn is None:
            return  # already ended (its connection is no longer its own)
        parser = self.parser
        if parser is None:  # the answer's first bytes: whole and plain, it needs no parser
            if not self.head_only:
                found = plain_answer(data, 0)
                if found is not None and found[2] == len(data):
                    take_plain(self.answer, data, 0, found, self.job.limit)
                    self.complete(keep_alive=True)
                    return
            parser = self.parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail(timeout=False)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.answer.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # noqa: S101 (called by the parser itself)
        status = parser.get_status_code()
        if status < 200:
            self.answer.headers = []
            return
        self.answer.status = status
        if self.head_only or status in (204, 304):
            self.complete(keep_alive=parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        self.answer.add_body(body, self.job.limit)

    def on_message_complete(self) -> None:
        if self.answer.status and not self.head_only and self.answer.status not in (204, 304):
            parser = self.parser
            self.complete(keep_alive=parser is not None and parser.should_keep_alive())

    # outcomes
    def complete(self, *, keep_alive: bool) -> None:
        conn = self.conn
        self.conn = None
        self.parser = None  # the caller's frame holds it while it feeds
        if conn is not None:
            if keep_alive:
                conn.pool.release(conn, self.dispatcher.loop.time())
            else:
                conn.owner = None
                conn.close()
        self.dispatcher.copy_done(self, ok=True, timeout=False)

    def fail(self, *, timeout: bool) -> None:
        pipe = self.pipe
        if pipe is not None:  # the copies behind it on its connection end with it
            pipe.fail(timeout=timeout)
            return
        self.parser = None
        self.abort_connection()
        self.dispatcher.copy_done(self, ok=False, timeout=timeout)


class _Pipe(_Owner):
    """The owner of an upstream connection that carries several copies sent back to back
    (HTTP/1.1 pipelining, ``shadow.pipeline``): one parser reads their answers, which come in
    the order of the requests, and hands each to the copy at the head of the line.

    A copy that fails (its job timed out, the connection was lost, an answer did not parse)
    ends every copy still waiting on the connection, which is closed: the answers behind it
    would come after it anyway. Parser, pipe and copies refer to each other; the references
    are dropped when the pipe ends, so that no cycle is left to the cyclic collector.
    """

    __slots__ = ("dispatcher", "keep_alive", "parser", "reading", "status", "waiting")

    def __init__(
        self,
        dispatcher: ShadowDispatcher,
        conn: UpstreamConnection,
        copies: list[tuple[_Copy, bytes]],
    ) -> None:
        self.dispatcher = dispatcher
        self.conn: UpstreamConnection | None = conn
        self.waiting: deque[tuple[_Copy, bytes]] = deque(copies)  # and the request sent
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.status = 0  # of the answer being read (0: none yet, or an interim 1xx)
        self.keep_alive = False  # whether the last answer left the connection open
        self.reading = False  # whether the parser is inside an answer (interim ones too)
        for copy, _ in copies:
            copy.pipe = self

    # pool.Owner
    def upstream_data(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return
        if not self.reading:  # between answers: whole plain ones need no parser
            start = 0
            waiting = self.waiting
            while waiting:
                found = plain_answer(data, start)
                if found is None:
                    break
                copy, _ = waiting.popleft()
                copy.pipe = None
                take_plain(copy.answer, data, start, found, copy.job.limit)
                self.keep_alive = True
                start = found[2]
                self.dispatcher.copy_done(copy, ok=True, timeout=False)
                if self.parser is None:  # ended meanwhile
                    return
            if start:
                data = data[start:]
        if data:
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:  # also an answer too many (no copy to give it to)
                self.fail(timeout=False)
                return
        if not self.waiting and self.parser is not None:
            self._done()

    # httptools callbacks: the answer of the copy at the head of the line
    def on_message_begin(self) -> None:
        self.reading = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.waiting[0][0].answer.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        assert parser is not None  # noqa: S101 (called by the parser itself)
        status = parser.get_status_code()
        answer = self.waiting[0][0].answer
        if status < 200:  # interim: its headers are not the answer's
            answer.headers = []
            self.status = 0
            return
        self.status = answer.status = status

    def on_body(self, body: bytes) -> None:
        copy = self.waiting[0][0]
        copy.answer.add_body(body, copy.job.limit)

    def on_message_complete(self) -> None:
        self.reading = False
        if not self.status:
            return  # the end of an interim answer
        self.status = 0
        parser = self.parser
        # asked here: once feed_data has returned, the parser answers for a next message
        self.keep_alive = parser is not None and parser.should_keep_alive()
        copy, _ = self.waiting.popleft()
        copy.pipe = None
        if not self.keep_alive and self.waiting and self.conn is not None:
            rest = list(self.waiting)
            self.waiting.clear()
            for waiting, _ in rest:
                waiting.pipe = None
            self.dispatcher.resend_alone(self.conn.pool, rest)
        self.dispatcher.copy_done(copy, ok=True, timeout=False)

    # outcomes
    def _done(self) -> None:
        """Every copy has its answer: the connection goes back to the pool (or is closed)."""
        conn = self.conn
        self.conn = None
        self.parser = None
        if conn is not None:
            if self.keep_alive:
                conn.pool.release(conn, self.dispatcher.loop.time())
            else:
                conn.owner = None
                conn.close()

    def fail(self, *, timeout: bool) -> None:
        self.parser = None
        self.abort_connection()
        waiting, self.waiting = self.waiting, deque()
        for copy, _ in waiting:
            copy.pipe = None
            self.dispatcher.copy_done(copy, ok=False, timeout=timeout)


class ShadowDispatcher:
    """The bounded queue of copies, the copies in flight and the comparisons."""

    def __init__(self, worker: Worker, collector: DiffCollector) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.collector = collector
        self.queue: deque[ShadowJob] = deque()
        self.max_queue = 1000
        self.inflight: dict[_Copy, ShadowJob] = {}
        self.jobs_inflight = 0
        self.pools: dict[tuple[str, int], Pool] = {}
        self.rules: dict[str, CompareRules] = {}
        # Copies that may be pipelined, by address, until the end of this turn of the loop.
        self.batches: dict[tuple[str, int], list[tuple[_Copy, bytes, int]]] = {}
        self.flush_due = False
        self.unpipelined: set[tuple[str, int]] = set()  # addresses that close after an answer
        self.sweep: asyncio.TimerHandle | None = None  # drops the copies past their deadline
        self.sweep_at = 0.0  # when it fires
        # Requests compared and found the same (and how many of them had a second stable
        # sample), by endpoint, until take_same hands them to the collector: a dictionary
        # entry here instead of a call into the (interpreted) collector for every copy.
        self.same: dict[str, list[int]] = {}
        self.endpoints = EndpointNames()
        self.first = FirstCopies()

    def configure(self, services: list[tuple[str, ShadowConfig | None]], queue: int) -> None:
        """Apply the shadow settings of every service (at start and on reload)."""
        self.max_queue = queue
        self.unpipelined = set()  # a reload may bring a new candidate: try pipelining again
        self.rules = {
            name: CompareRules(
                headers=tuple(s.compare.headers),
                ignore_fields=tuple(s.compare.ignore_fields),
                ignore_headers=tuple(s.compare.ignore_headers),
                unordered_arrays=s.compare.unordered_arrays,
                max_body_bytes=s.max_body_bytes,
            )
            for name, s in services
            if s is not None
        }

    def start(self) -> None:
        """Nothing to start: copies run on callbacks (kept for the worker's life cycle)."""

    async def stop(self) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        for copy in list(self.inflight):
            copy.fail(timeout=True)
        self.queue.clear()
        for pool in self.pools.values():
            pool.close()

    # -- from the router and the user's exchange -----------------------------------------

    def offer(
        self,
        exchange: Exchange,
        route: RouteRuntime,
        path: bytes,
        line: bytes,
        request: bytes,
        noise: bytes,
    ) -> None:
        """Start or queue a copy of ``exchange``'s request, or count it dropped; never blocks."""
        service = exchange.service
        counters = route.shadow_counters
        assert counters is not None  # noqa: S101 (set for the routes of a shadowing service)
        if self.jobs_inflight >= CONCURRENCY and len(self.queue) >= self.max_queue:
            counters.dropped_queue_full += 1
            return
        method = exchange.method
        endpoint = self.endpoints.name(service.name, method, path)
        take_noise = method in _NOISE_METHODS and self._sample_noise(service, endpoint)
        job = ShadowJob(
            self,
            service,
            route,
            endpoint,
            method,
            line,
            request,
            noise if take_noise else None,
            counters,
            service.shadow_max_body_bytes,
        )
        exchange.capture = job
        if self.jobs_inflight < CONCURRENCY:
            self.send(job)
        else:
            self.queue.append(job)

    def _sample_noise(self, service: ServiceRuntime, endpoint: str) -> bool:
        """Whether this copy also goes to stable a second time: one of the endpoint's first
        ``noise_first`` copies here, else a draw of ``noise_share`` percent; never with a
        ``noise_share`` of 0 (no second samples at all)."""
        share = service.shadow_noise_share
        if share >= 100:
            return True
        if share <= 0:
            return False
        first = service.shadow_noise_first
        if first and self.first.take(endpoint, first):
            return True
        return self.worker.draw() * 100 < share

    def send(self, job: ShadowJob) -> None:
        """Send the copy (and its second stable sample) once the request body is complete."""
        if not job.body_done:
            job.waiting_body = True
            return
        service = job.service
        if service.shadow is None:  # shadowing was switched off by a reload
            job.finished = True
            return
        self.jobs_inflight += 1
        now = self.loop.time()
        job.started = now
        job.deadline = now + service.shadow_timeout_s
        if self.sweep is None or job.deadline < self.sweep_at:
            self._sweep_at(job.deadline)
        body = b"".join(job.body) if job.body else b""
        method = job.method
        head_only = method == b"HEAD"
        # Pipelined: only GET and OPTIONS without a body (safe, and an answer the parser can
        # frame alone; the answer to a HEAD has a length and no body).
        depth = service.shadow_pipeline if not body and method in _PIPELINED_METHODS else 1
        candidate = service.candidate.pick().pool.address
        self._copy(job, candidate, job.request + body, head_only, False, depth)
        if job.noise is not None:
            stable = service.stable.pick().pool.address
            self._copy(job, stable, job.noise + body, head_only, True, depth)

    def _copy(
        self,
        job: ShadowJob,
        address: tuple[str, int],
        data: bytes,
        head_only: bool,
        secondary: bool,
        depth: int,
    ) -> None:
        copy = _Copy(self, job, secondary=secondary, head_only=head_only)
        self.inflight[copy] = job
        job.copies.append(copy)
        if depth > 1 and address not in self.unpipelined:
            batch = self.batches.get(address)
            if batch is None:
                batch = self.batches[address] = []
            batch.append((copy, data, depth))
            if not self.flush_due:
                self.flush_due = True
                self.loop.call_soon(self._flush)
            return
        self._send_alone(copy, self._pool(address), data)

    def _send_alone(self, copy: _Copy, pool: Pool, data: bytes) -> None:
        self._send_group(pool, [(copy, data, 1)])

    def resend_alone(self, pool: Pool, copies: list[tuple[_Copy, bytes]]) -> None:
        """Send again, one per connection, pipelined copies that a connection closed by its
        upstream after an earlier answer left unanswered (a server that closes does not read
        on: RFC 9112, 9.3.2; they are GETs and OPTIONS, safe to send again). Later copies to
        that address are not pipelined."""
        self.unpipelined.add(pool.address)
        for copy, data in copies:
            if copy in self.inflight:
                self._send_alone(copy, pool, data)

    def _flush(self) -> None:
        """Send the copies gathered in this turn of the loop: each address's in groups of at
        most their ``shadow.pipeline``, a group back to back on one connection, in one write."""
        self.flush_due = False
        batches, self.batches = self.batches, {}
        for address, batch in batches.items():
            live = [item for item in batch if item[0] in self.inflight]  # (a worker stopping)
            if not live:
                continue
            pool = self._pool(address)
            group: list[tuple[_Copy, bytes, int]] = []
            for item in live:
                group.append(item)
                if len(group) >= item[2]:
                    self._send_group(pool, group)
                    group = []
            if group:
                self._send_group(pool, group)

    def _send_group(self, pool: Pool, group: list[tuple[_Copy, bytes, int]]) -> None:
        """Send ``group`` (copies still in flight) on an idle connection of ``pool``, or on a
        new one: one copy as it is, several back to back (:class:`_Pipe`)."""
        conn = pool.take()
        if conn is None:
            deadline = min(copy.job.deadline for copy, _, _ in group)
            self.worker.spawn(self._connect(pool, group, deadline), "shadow connect")
        else:
            self._pipeline(conn, group)

    def _pipeline(self, conn: UpstreamConnection, group: list[tuple[_Copy, bytes, int]]) -> None:
        if len(group) == 1:
            copy, data, _ = group[0]
            copy.send(conn, data)
        else:
            conn.owner = _Pipe(self, conn, [(copy, data) for copy, data, _ in group])
            conn.write(b"".join([data for _, data, _ in group]))

    async def _connect(
        self, pool: Pool, group: list[tuple[_Copy, bytes, int]], deadline: float
    ) -> None:
        try:
            conn = await pool.connect(max(deadline - self.loop.time(), 0.001))
        except (OSError, TimeoutError) as exc:
            # not connected by the copies' deadline: dropped for time, as the sweep would
            timeout = isinstance(exc, TimeoutError)
            for copy, _, _ in group:
                if copy in self.inflight:
                    copy.fail(timeout=timeout)
            return
        group = [item for item in group if item[0] in self.inflight]  # some timed out meanwhile
        if group:
            self._pipeline(conn, group)
        else:
            pool.release(conn, self.loop.time())

    # -- outcomes ------------------------------------------------------------------------

    def copy_done(self, copy: _Copy, *, ok: bool, timeout: bool) -> None:
        job = self.inflight.pop(copy, None)
        if job is None:
            return
        if not copy.secondary:
            counters = job.counters
            elapsed = self.loop.time() - job.started
            if ok:
                counters.sent += 1
                job.series.observe(copy.answer.status, elapsed, None)
                job.candidate = copy.answer
            else:
                if timeout:
                    counters.dropped_timeout += 1
                else:
                    counters.dropped_error += 1
                job.series.observe(0, elapsed, None)
        elif ok:
            job.secondary = copy.answer
        job.answered()

    def compare(self, job: ShadowJob) -> None:
        """All answers are in: compare them (or count why not) and start the next copy."""
        if job.finished:
            return
        job.finished = True
        job.copies = []  # every copy has ended: the cycle through them goes (see _Copy)
        self.jobs_inflight -= 1
        self._next()
        primary, candidate = job.primary, job.candidate
        if primary is None or candidate is None or not primary.status:
            return
        counters = job.counters
        if primary.too_large or candidate.too_large:
            counters.too_large += 1
            return
        rules = self.rules.get(job.service.name)
        if rules is None:
            return
        secondary = job.secondary
        if secondary is not None and secondary.too_large:
            secondary = None
        wanted = rules.read_headers
        if same_lift(primary, candidate, wanted) and (
            secondary is None or same_lift(primary, secondary, wanted)
        ):
            # What ``record`` would count for them, without lifting three answers: about a
            # quarter of a copied request's work in the proxy, for the usual copy of a
            # candidate that answers as stable does.
            same = self.same.get(job.endpoint)
            if same is None:
                same = self.same[job.endpoint] = [0, 0]
            same[0] += 1
            if secondary is not None:
                same[1] += 1
            counters.compared += 1
            return
        differs = self.collector.record(
            job.endpoint,
            primary.lifted(rules),
            candidate.lifted(rules),
            secondary.lifted(rules) if secondary is not None else None,
            job.line.decode("latin-1"),
        )
        counters.compared += 1
        if differs:
            counters.differing += 1

    def take_same(self) -> None:
        """Hand the requests compared the same since the last call to the diff collector
        (``DiffCollector.record_same``); the worker calls it before taking the collector's
        state. Endpoints new to the collector enter it in the order of the hand-over, so past
        its cap on endpoints (1,000 by default) the ones it leaves untracked can differ from
        those a request-by-request count would leave."""
        same, self.same = self.same, {}
        for endpoint, (compared, noise_sampled) in same.items():
            if noise_sampled:
                self.collector.record_same(endpoint, noise_sampled=True, times=noise_sampled)
            if compared > noise_sampled:
                self.collector.record_same(
                    endpoint, noise_sampled=False, times=compared - noise_sampled
                )

    def _next(self) -> None:
        while self.queue and self.jobs_inflight < CONCURRENCY:
            self.send(self.queue.popleft())

    def _sweep_at(self, when: float) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
        self.sweep = self.loop.call_at(when, self._drop_late)
        self.sweep_at = when

    def _drop_late(self) -> None:
        """The earliest deadline has come: the copies in flight whose ``shadow.timeout_s`` has
        passed are dropped, and the timer is set for the next deadline, if any.

        One timer for all copies instead of one per copied request: setting and cancelling a
        loop timer cost about 8,000 instructions per copied request (callgrind), and a sweep
        walks the copies in flight (at most two per job, ``CONCURRENCY`` jobs), about once
        per ``timeout_s`` while the candidate answers in time.
        """
        self.sweep = None
        now = self.loop.time()
        expired = [copy for copy, job in self.inflight.items() if job.deadline <= now]
        for copy in expired:
            if copy in self.inflight:  # a failing pipelined copy ends the ones behind it
                copy.fail(timeout=True)
        if self.inflight:
            soonest = min(job.deadline for job in self.inflight.values())
            self._sweep_at(max(soonest, now + SWEEP_FLOOR_S))

    def expire(self, now: float) -> None:
        """Called by the worker's ticker: close idle connections of the shadow pools."""
        for pool in self.pools.values():
            pool.expire(now)

    def _pool(self, address: tuple[str, int]) -> Pool:
        pool = self.pools.get(address)
        if pool is None:
            config = self.worker.config.pool
            pool = Pool(
                self.loop,
                address,
                max_idle=config.max_idle_per_address,
                idle_timeout=config.idle_timeout_s,
            )
            self.pools[address] = pool
        return pool


__all__ = [
    "CONCURRENCY",
    "ENDPOINT_NAMES",
    "ENDPOINT_PATH_BYTES",
    "NOISE_FIRST_ENDPOINTS",
    "Answer",
    "EndpointNames",
    "FirstCopies",
    "ShadowDispatcher",
    "ShadowJob",
    "endpoint_of",
]
