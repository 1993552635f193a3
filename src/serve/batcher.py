"""The micro-batcher: one inference thread owns the Predictor and runs the documents of requests that arrive within
``wait_s`` of each other as one call, which is where a batched model gets its throughput.

The asyncio side only ever calls ``submit`` (never blocks: a full queue raises ``QueueFull`` at once, so the
service can answer 503) and awaits the returned future. Everything the thread can hold is bounded: ``queue_size``
jobs waiting plus one batch of about ``batch_size`` documents.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_STOP = object()  # the queue's last item: the thread finishes what was queued before it, then ends


class QueueFull(RuntimeError):
    """The queue holds ``queue_size`` jobs: come back later (the service answers 503 with Retry-After)."""


class NotReady(RuntimeError):
    """The models are not loaded and warmed up yet, or the batcher is stopping."""


class DeadlineExceeded(TimeoutError):
    """The job's deadline passed before its batch started: it was skipped, not predicted."""


@dataclass
class Job:
    """One request's documents. ``finish`` turns their predictions into the result (run on the inference thread,
    so encoding a large answer never stalls the event loop)."""

    records: Sequence[dict]
    finish: Callable[[list[dict]], Any]
    deadline: float  # time.monotonic()
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """Queue of ``Job`` and the thread that runs them in batches.

    ``load`` is called on the thread and returns ``predict`` (records -> prediction records, in order); ``warmup``
    records are predicted once before ``ready`` is set. A batch closes when it holds at least ``batch_size``
    documents or ``wait_s`` after its first job arrived (a single larger job runs alone; the Predictor chunks it).
    """

    def __init__(
        self,
        load: Callable[[], Callable[[list[dict]], list[dict]]],
        batch_size: int,
        wait_s: float,
        queue_size: int,
        warmup: Sequence[dict] = (),
    ) -> None:
        self.load, self.warmup = load, list(warmup)
        self.batch_size, self.wait_s = batch_size, wait_s
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.ready = threading.Event()
        self.failure: str | None = None  # why loading or the warm-up failed
        self.stopping = False
        self.running = 0  # documents in the batch being predicted (read by /readyz: an indication only)
        self.thread = threading.Thread(target=self._main, name="inference", daemon=True)

    def start(self) -> None:
        self.thread.start()

    @property
    def is_ready(self) -> bool:
        return self.ready.is_set() and not self.stopping and self.thread.is_alive()

    def submit(self, records: Sequence[dict], finish: Callable[[list[dict]], Any], deadline: float) -> Future:
        """Queue a job and return its future (result: ``finish(predictions)``); ``QueueFull`` or ``NotReady`` at
        once instead of waiting."""
        if not self.is_ready:
            raise NotReady(self.failure or ("stopping" if self.stopping else "the models are still loading"))
        job = Job(records, finish, deadline)
        try:
            self.queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f"the inference queue is full: {self.queue.maxsize} requests waiting") from None
        return job.future

    def stop(self, timeout: float | None = None) -> None:
        """Finish the queued jobs, then end the thread (blocks up to ``timeout`` seconds)."""
        self.stopping = True
        if not self.thread.is_alive():
            return
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("the inference queue did not drain in %s s; stopping without it", timeout)
            return
        self.thread.join(timeout)

    # -- the inference thread -----------------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            predict = self.load()
            if self.warmup:
                predict(self.warmup)
        except Exception as err:  # the service stays up and says why in /readyz (and its log)
            self.failure = f"loading the models failed: {type(err).__name__}: {err}"
            log.exception("loading the models failed")
            self._drain_failed()
            return
        self.ready.set()
        carry = None
        while True:
            job = carry if carry is not None else self.queue.get()
            carry = None
            if job is _STOP:
                return
            batch, carry = self._collect(job)
            self._run(predict, batch)

    def _collect(self, first: Job) -> tuple[list[Job], object | None]:
        """The jobs of one batch, starting with ``first``; and ``_STOP`` if it arrived meanwhile."""
        batch, size = [first], len(first.records)
        end = time.monotonic() + self.wait_s
        while size < self.batch_size:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is _STOP:
                return batch, _STOP
            batch.append(job)
            size += len(job.records)
        return batch, None

    def _run(self, predict: Callable[[list[dict]], list[dict]], batch: list[Job]) -> None:
        now = time.monotonic()
        live = []
        for job in batch:
            if not job.future.set_running_or_notify_cancel():
                continue  # its request timed out or went away while it waited
            if now > job.deadline:
                job.future.set_exception(DeadlineExceeded("the request's time limit passed before its batch ran"))
                continue
            live.append(job)
        if not live:
            return
        records = [record for job in live for record in job.records]
        self.running = len(records)
        try:
            predictions = predict(records)
            if len(predictions) != len(records):
                raise RuntimeError(f"{len(records)} documents in, {len(predictions)} predictions out")
        except Exception as err:  # the Predictor turns bad documents into error records: this is a real fault
            log.exception("a batch of %d documents failed", len(records))
            for job in live:
                job.future.set_exception(err)
            return
        finally:
            self.running = 0
        start = 0
        for job in live:
            part = predictions[start : start + len(job.records)]
            start += len(job.records)
            try:
                job.future.set_result(job.finish(part))
            except Exception as err:
                log.exception("encoding an answer failed")
                job.future.set_exception(err)

    def _drain_failed(self) -> None:
        """After a failed load nothing is ever submitted (``submit`` checks ``ready``); answer anything queued."""
        while True:
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP and job.future.set_running_or_notify_cancel():
                job.future.set_exception(NotReady(self.failure))
