import factory
from django.contrib.auth import get_user_model

from jobs.models import Job, JobRun


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


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    name = factory.Sequence(lambda n: f"job {n}")
    kind = "jobs.ping"
    owner = factory.SubFactory(UserFactory)
