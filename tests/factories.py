import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from jobs.constants import Queue
from jobs.models import FINISHED_STATUSES, Job, JobRun, JobRunLogEntry, RunCount, RunStatus, WorkerPresence


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class StaffFactory(UserFactory):
    """A staff user in the operators' groups named (core.roles): `StaffFactory(groups=[VIEWERS])`;
    none: staff with no permission at all."""

    is_staff = True

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        from django.contrib.auth.models import Group

        from core.roles import operator_groups_ensure

        if extracted:
            operator_groups_ensure()
            self.groups.add(*Group.objects.filter(name__in=extracted))


def operator_make(user, *, group: str | None = None):
    """`user` made staff in an operators' group (core.roles; Run operators unless named), as an
    admin would hand it out; the user's cached permissions are dropped."""
    from django.contrib.auth.models import Group

    from core.roles import OPERATORS, operator_groups_ensure

    operator_groups_ensure()
    user.is_staff = True
    user.save()
    user.groups.add(Group.objects.get(name=group or OPERATORS))
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    kind = "jobs.ping"
    queue = "jobs"
    status = RunStatus.QUEUED
    owner = factory.SubFactory(UserFactory)
    # A finished run has ended at some moment (the database insists).
    finished_at = factory.LazyAttribute(lambda run: timezone.now() if run.status in FINISHED_STATUSES else None)


class JobRunLogEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRunLogEntry

    run = factory.SubFactory(JobRunFactory)
    message = factory.Sequence(lambda n: f"step {n} done")


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    name = factory.Sequence(lambda n: f"job {n}")
    kind = "jobs.ping"
    owner = factory.SubFactory(UserFactory)


class WorkerPresenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkerPresence

    name = factory.Sequence(lambda n: f"machine-{n}@host")
    queues = factory.LazyFunction(lambda: [Queue.JOBS])
    seen_at = factory.LazyFunction(timezone.now)


class RunCountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunCount

    owner = factory.SubFactory(UserFactory)
    kind = "jobs.ping"
    status = RunStatus.SUCCESS
    runs = 1
    counted_until = factory.LazyFunction(timezone.now)


class DocumentFactory(factory.django.DjangoModelFactory):
    """A ready document row (no stored file, no chunks): for pages and lists, not for search."""

    class Meta:
        model = "documents.Document"

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"notes-{n}.txt")
    original_name = factory.LazyAttribute(lambda d: d.title)
    format = "text"
    size = 100
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    file = factory.LazyAttribute(lambda d: f"documents/{d.title}")
    status = "ready"
    ready_at = factory.LazyFunction(timezone.now)


class FindingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "research.Finding"

    document = factory.SubFactory(DocumentFactory)
    question_key = factory.Sequence(lambda n: f"{n:064x}")
    document_version = factory.LazyAttribute(lambda f: f.document.ready_at)
    method = "extractive"
    content = "- “Write-ahead logging flushes every change first.” [1]"
    citations = factory.LazyFunction(lambda: [{"ref": 1, "chunk_index": 0, "page": 2,
                                               "quote": "Write-ahead logging flushes every change first."}])


class DigestSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "research.DigestSource"

    run = factory.SubFactory(JobRunFactory, kind="research.digest", queue=Queue.RESEARCH)
    document = factory.SubFactory(DocumentFactory)
    title = factory.LazyAttribute(lambda s: s.document.title)
    rank = factory.Sequence(lambda n: n + 1)


class DigestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "research.Digest"

    owner = factory.SubFactory(UserFactory)
    run = factory.SubFactory(JobRunFactory, kind="research.digest", queue=Queue.RESEARCH, status="SUCCESS",
                             owner=factory.SelfAttribute("..owner"))
    topic = "Durability"
    method = "extractive"
    content = "# Durability\n\n## wal.txt\n- “Write-ahead logging flushes every change first.” [1]"
    citations = factory.LazyFunction(lambda: [{"ref": 1, "document_id": None, "title": "wal.txt", "chunk_index": 0,
                                               "page": 2, "quote": "Write-ahead logging flushes every change first."}])


class ChatSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "chat.ChatSession"

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"session {n}")


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "chat.Message"

    session = factory.SubFactory(ChatSessionFactory)
    role = "user"
    content = "What does the log say?"
