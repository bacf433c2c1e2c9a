from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # Built without locking out new sessions, which needs no transaction.
    atomic = False

    dependencies = [
        ('chat', '0002_message_status_without_pending'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='chatsession',
            index=models.Index(fields=['created_at'], name='chatsession_created'),
        ),
    ]
