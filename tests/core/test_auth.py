import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_anonymous_is_refused_and_a_token_from_create_api_token_works(client, capsys):
    assert client.get("/api/runs/").status_code == 401

    call_command("create_api_token", "alice")
    key = capsys.readouterr().out.split()[-1]

    assert client.get("/api/runs/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert client.get("/api/runs/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert client.get("/api/runs/", HTTP_AUTHORIZATION="Bearer not-a-key").status_code == 401


@pytest.mark.django_db
def test_create_api_token_is_stable_for_an_existing_user(capsys):
    call_command("create_api_token", "bob")
    first = capsys.readouterr().out.split()[-1]
    call_command("create_api_token", "bob")
    assert capsys.readouterr().out.split()[-1] == first


@pytest.mark.django_db
def test_create_api_token_prints_a_line_for_each_user_named(client, capsys):
    call_command("create_api_token", "carol", "dave")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(";")[0].split()[-1] for line in lines] == ["carol", "dave"]
    for line in lines:
        assert client.get("/api/runs/", HTTP_AUTHORIZATION=f"Token {line.split()[-1]}").status_code == 200


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


@pytest.mark.django_db
def test_the_admin_login_locks_after_repeated_failures(client, settings):
    from tests.factories import UserFactory

    settings.AXES_FAILURE_LIMIT = 3
    admin = UserFactory(is_staff=True, is_superuser=True)
    admin.set_password("the-right-password-42")
    admin.save()
    for _ in range(3):
        client.post("/admin/login/", {"username": admin.username, "password": "a wrong guess"})
    locked = client.post("/admin/login/?next=/admin/", {"username": admin.username,
                                                        "password": "the-right-password-42"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another user from the same address is not locked out by someone else's guesses.
    other = UserFactory(is_staff=True)
    other.set_password("another-right-password-7")
    other.save()
    assert client.post("/admin/login/?next=/admin/", {"username": other.username,
                                                      "password": "another-right-password-7"}).status_code == 302


def test_admin_logins_lock_one_user_name_from_one_address_with_retry_after(db, client, settings):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("root-admin", "root@example.com", "right-password-1234")
    guess = {"username": "root-admin", "password": "wrong"}
    codes = [client.post("/admin/login/?next=/admin/", guess, REMOTE_ADDR="203.0.113.9").status_code
             for _ in range(settings.AXES_FAILURE_LIMIT + 1)]
    assert codes[:settings.AXES_FAILURE_LIMIT - 1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)
    assert codes[-1] == 429
    locked = client.post("/admin/login/?next=/admin/", {**guess, "password": "right-password-1234"},
                         REMOTE_ADDR="203.0.113.9")
    assert locked.status_code == 429 and int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME * 3600
    # The real user, from their own address, is not locked out by someone else's guesses.
    elsewhere = client.post("/admin/login/?next=/admin/", {**guess, "password": "right-password-1234"},
                            REMOTE_ADDR="198.51.100.4")
    assert elsewhere.status_code == 302
