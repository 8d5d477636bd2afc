"""Micro-batching of concurrent requests: one kernel call for the images of many requests.

A `MicroBatcher` serves one model with two threads joined by a short queue:

- the scorer takes the first waiting request, gathers more until `max_batch` images are
  gathered or `max_wait_s` has passed since the first one (requests that queued while the
  previous batch was scored are taken at once), and scores all their images in one call;
- the finisher takes each scored batch and completes it in one go (for the service: map PNGs,
  files flushed, one committed transaction for all rows) before any of its requests is
  answered, while the scorer already works on the next batch.

Each request's future resolves with its own part of the batch's results, or with the
exception that failed the batch. A request whose caller stopped waiting (its future cancelled)
before its batch was gathered is dropped; once gathered, it is scored and finished with the
others.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

_STOP = object()


@dataclass
class Job:
    """One request in a batch: its items (images), its options and the future it waits on."""

    items: Sequence[Any]
    options: Any = None
    future: Future = field(default_factory=Future)


Score = Callable[[list[Any]], list[Any]]
Finish = Callable[[list[Job], list[list[Any]]], list[Any]]


class MicroBatcher:
    """Gathers jobs into batches, scores and finishes them (see module docstring).

    Parameters
    ----------
    score : callable
        All items of a batch (in job order) -> one result per item.
    finish : callable
        (jobs, each job's results) -> one answer per job, set on the job's future.
    max_batch : int
        Most items gathered into one batch (a larger job is scored alone).
    max_wait_s : float
        Longest wait for more jobs after the first of a batch arrived.
    name : str
        Thread name prefix.
    """

    def __init__(self, score: Score, finish: Finish, max_batch: int, max_wait_s: float,
                 name: str = "batch"):
        self.score, self.finish = score, finish
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self.jobs: queue.Queue = queue.Queue()
        self.scored: queue.Queue = queue.Queue(maxsize=2)
        self.batches = 0
        self.carried: Job | None = None
        self.threads = [threading.Thread(target=self._score_loop, name=f"{name}-score", daemon=True),
                        threading.Thread(target=self._finish_loop, name=f"{name}-finish", daemon=True)]
        for thread in self.threads:
            thread.start()

    def submit(self, items: Sequence[Any], options: Any = None) -> Future:
        """Queue a job; its future gives `finish`'s answer for it.

        Parameters
        ----------
        items : sequence
            The job's items (images), scored with those of other jobs.
        options : object, optional
            Passed to `finish` on the job, unchanged.

        Returns
        -------
        concurrent.futures.Future
            Resolves with the job's answer, or with the exception that failed its batch.
        """
        job = Job(items, options)
        self.jobs.put(job)
        return job.future

    def close(self) -> None:
        """Finish the queued jobs, then stop the threads."""
        self.jobs.put(_STOP)
        for thread in self.threads:
            thread.join()

    def _gather(self, first: Job) -> tuple[list[Job], bool]:
        batch, count = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = self.jobs.get(timeout=left)
                except queue.Empty:
                    break
            if job is _STOP:
                return batch, True
            if not job.future.set_running_or_notify_cancel():  # its caller stopped waiting
                continue
            if count + len(job.items) > self.max_batch:
                self.carried = job  # first of the next batch
                break
            batch.append(job)
            count += len(job.items)
        return batch, False

    def _score_loop(self) -> None:
        stop = False
        while not stop:
            if self.carried is not None:
                first, self.carried = self.carried, None
            else:
                first = self.jobs.get()
                if first is _STOP:
                    break
                if not first.future.set_running_or_notify_cancel():  # its caller stopped waiting
                    continue
            batch, stop = self._gather(first)
            try:
                results = self.score([item for job in batch for item in job.items])
            except BaseException as exc:  # the batch's requests are answered with the error
                for job in batch:
                    job.future.set_exception(exc)
                continue
            parts, start = [], 0
            for job in batch:
                parts.append(results[start:start + len(job.items)])
                start += len(job.items)
            self.batches += 1
            self.scored.put((batch, parts))
        self.scored.put(_STOP)

    def _finish_loop(self) -> None:
        while True:
            entry = self.scored.get()
            if entry is _STOP:
                return
            batch, parts = entry
            try:
                answers = self.finish(batch, parts)
            except BaseException as exc:
                for job in batch:
                    job.future.set_exception(exc)
                continue
            for job, answer in zip(batch, answers):
                job.future.set_result(answer)
