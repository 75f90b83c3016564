"""The serve job queue as a state machine (hypothesis): bounded, one job per worker at a time, cancel of queued
and running jobs, results kept until expiry and then forgotten with their files."""

import threading
import time

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from facedancer.serve.jobs import CANCELLED, DONE, FINISHED, RUNNING, JobQueue, QueueFull

MAX_JOBS, WORKERS = 3, 1


class JobQueueMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.expired: list[str] = []
        self.queue = JobQueue(WORKERS, MAX_JOBS, ttl=3600, on_expire=lambda job: self.expired.append(job.id))
        self.release: dict[str, threading.Event] = {}
        self.open: list[str] = []  # submitted, not yet finished
        self.finished: dict[str, str] = {}  # id -> expected final state

    def teardown(self):
        for event in self.release.values():
            event.set()
        self.queue.close()

    def _work(self, event):
        def work(job):
            while not event.wait(0.005):
                job.check_cancelled()
            return {"id": job.id}

        return work

    @rule()
    def submit(self):
        event = threading.Event()
        try:
            job = self.queue.submit("test", self._work(event))
        except QueueFull:
            assert len(self.open) >= MAX_JOBS
            return
        assert len(self.open) < MAX_JOBS
        self.release[job.id] = event
        self.open.append(job.id)

    @precondition(lambda self: self.open)
    @rule()
    def finish(self):
        job_id = self.open[0]  # one worker, jobs in order: the oldest open job is the running one
        self.release[job_id].set()
        job = self.queue.get(job_id)
        assert job.wait(10)
        assert job.state == DONE and job.result == {"id": job_id} and job.progress == 1.0
        self.open.remove(job_id)
        self.finished[job_id] = DONE

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def cancel(self, data):
        job_id = data.draw(st.sampled_from(self.open))
        job = self.queue.cancel(job_id)
        assert job.wait(10)
        assert job.state == CANCELLED and job.result is None
        self.open.remove(job_id)
        self.finished[job_id] = CANCELLED

    @precondition(lambda self: self.finished)
    @rule(data=st.data())
    def cancel_finished_changes_nothing(self, data):
        job_id = data.draw(st.sampled_from(sorted(self.finished)))
        assert self.queue.cancel(job_id).state == self.finished[job_id]

    @rule()
    def expire_all(self):
        gone = self.queue.expire(now=time.time() + 3601)
        assert gone == len(self.finished) and sorted(self.expired[-gone:] if gone else []) == sorted(self.finished)
        for job_id in self.finished:
            assert self.queue.get(job_id) is None
        self.finished.clear()

    @invariant()
    def finished_jobs_let_go_of_their_work(self):
        # a kept result must not keep what the work held (a served video job's swapper, ~100 MB of models)
        assert all(job.work is None for job in self.queue.jobs() if job.state in FINISHED)

    @invariant()
    def counts_match(self):
        assert self.queue.active() == len(self.open)
        assert sum(job.state == RUNNING for job in self.queue.jobs()) <= WORKERS
        for job_id, state in self.finished.items():
            assert self.queue.get(job_id).state == state


JobQueueMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_job_queue = JobQueueMachine.TestCase
