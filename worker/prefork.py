"""The worker's pool (the `worker_pool` setting): Celery's prefork pool, which replaces a child that exited (after
its one job: worker_max_tasks_per_child=1) as soon as the child can be reaped, so the next job starts at once.

With an event loop (Redis) the pool reaps a child and forks its replacement when the child's sentinel pipe closes.
The pipe closes a few milliseconds before the exiting child can be reaped (celery/celery#9588), and a reap in that
window finds the child alive: Celery's AsynPool then waits for its 5 s maintenance timer. This one looks again
every REAP_POLL_S. Without an event loop (the filesystem broker) Celery runs billiard's threaded pool instead,
which reaps every 0.8 s; this class plays no part there.
"""
from celery.concurrency import asynpool, prefork

REAP_POLL_S = 0.01
REAP_POLLS = 100  # past these, a child that outlives its sentinel is left to the pool's maintenance timer


class AsynPool(asynpool.AsynPool):
    def _event_process_exit(self, hub, proc, polls_left: int = REAP_POLLS):
        super()._event_process_exit(hub, proc)  # reaps the child and starts its replacement, if it has exited
        if proc in self._pool and polls_left:  # not reapable yet
            hub.call_later(REAP_POLL_S, self._event_process_exit, hub, proc, polls_left - 1)


class TaskPool(prefork.TaskPool):
    Pool = AsynPool
