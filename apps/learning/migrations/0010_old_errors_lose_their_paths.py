# Runs that failed before errors carried references recorded the exception itself
# ("OSError: ... '/srv/...'", with a traceback for training), which pages and the API showed.
# Those texts give way to a plain sentence; the details were logged when the run failed.

import re

from django.db import migrations

RAW_EXCEPTION = re.compile(r"^(Chunk \d+: )?[A-Za-z_][\w.]*: ")
REPLACED = "Failed on an internal error; the server log of that day has the details."


def raw_errors_to_plain(apps, schema_editor):
    for model in ("TrainingRun", "PoolRanking"):
        Job = apps.get_model("learning", model)
        for pk, error in Job.objects.exclude(error="").values_list("pk", "error"):
            if RAW_EXCEPTION.match(error):
                Job.objects.filter(pk=pk).update(error=REPLACED)


class Migration(migrations.Migration):

    dependencies = [
        ('learning', '0009_embedding_jobs_and_job_attempts'),
    ]

    operations = [
        migrations.RunPython(raw_errors_to_plain, migrations.RunPython.noop),
    ]
