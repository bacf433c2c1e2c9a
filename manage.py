#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from core.configuration import environment
    from core.local_services import unstarted_refusal

    refusal = unstarted_refusal(argv=sys.argv, environ=environment())
    if refusal:
        sys.exit(refusal)  # on stderr, exit status 1
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
