"""Who started a run, apart from whose it is; runs an operator started on someone's job become
that job owner's, the operator kept as `started_by`."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0009_run_invariants'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='jobrun',
            name='started_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True,
                                    on_delete=django.db.models.deletion.SET_NULL, related_name='+',
                                    to=settings.AUTH_USER_MODEL),
        ),
        migrations.RunSQL(
            """
            UPDATE jobs_jobrun AS run
               SET started_by_id = run.owner_id, owner_id = job.owner_id
              FROM jobs_job AS job
             WHERE run.job_id = job.id AND job.owner_id IS NOT NULL AND run.owner_id IS DISTINCT FROM job.owner_id
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
