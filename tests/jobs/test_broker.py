"""Where a run's message stands in line (pure: settings only, no broker)."""

from jobs.broker import publish_priority, redis_queue_keys


def test_on_redis_resumed_work_takes_the_list_read_first_and_fresh_work_the_last(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"priority_steps": [0, 9], "sep": "\x06\x16"}
    assert publish_priority(resume=True) == 0
    assert publish_priority(resume=False) == 9
    assert redis_queue_keys("documents") == ["documents", "documents\x06\x169"]


def test_on_rabbitmq_resumed_work_has_the_highest_priority(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.CELERY_TASK_QUEUE_MAX_PRIORITY = 9
    assert publish_priority(resume=True) == 9
    assert publish_priority(resume=False) == 0


def test_the_settings_give_redis_two_places_in_line():
    from django.conf import settings

    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"] == [0, 9]
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] == "priority"
