from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from core.roles import GROUP_PERMISSIONS, operator_groups_ensure


class Command(BaseCommand):
    help = ("Create USERNAME if missing and print its API token (the last word of the output); given several, "
            "a line for each.")

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="+", metavar="username")
        parser.add_argument("--staff", action="store_true",
                            help="Make the user staff: into the admin, with no more reach than their own objects.")
        parser.add_argument("--group", choices=sorted(GROUP_PERMISSIONS),
                            help="Make the user staff in this group: Run viewers read everyone's work, Run operators "
                                 "also steer it (see core/roles.py).")

    def handle(self, *args, usernames, staff, group, **options):
        for username in usernames:
            self._token_print(username, staff=staff, group=group)

    def _token_print(self, username: str, *, staff: bool, group: str | None) -> None:
        user, created = get_user_model().objects.get_or_create(username=username)
        if created:
            user.set_unusable_password()
        if staff or group:
            user.is_staff = True
        user.save()
        if group:
            operator_groups_ensure()
            user.groups.add(Group.objects.get(name=group))
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(f"{'Created user' if created else 'User'} {username}; API token: {token.key}")
