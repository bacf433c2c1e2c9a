import factory
from django.contrib.auth import get_user_model

from jobs.models import Job, JobRun, JobRunLogEntry


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    kind = "jobs.ping"
    queue = "jobs"
    owner = factory.SubFactory(UserFactory)


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
