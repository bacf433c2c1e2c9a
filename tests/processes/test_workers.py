"""The workers a deployment starts consume every queue work is published to."""

import pytest

from core.queues import Queue
from processes.workers import WORKER_GROUPS, worker_programs

pytestmark = pytest.mark.unit


def test_every_queue_has_exactly_one_worker_group():
    consumed = [queue for queues in WORKER_GROUPS.values() for queue in queues]
    assert sorted(consumed) == sorted(Queue)


def test_each_worker_is_told_its_groups_queues():
    told = {}
    for program in worker_programs(beat=False):
        command = program.argv
        told[command[command.index("-n") + 1].split("@")[0]] = command[command.index("-Q") + 1].split(",")
    assert told == {name: [str(queue) for queue in queues] for name, queues in WORKER_GROUPS.items()}
