# Consolidations that failed before errors carried references recorded the exception itself
# ("OSError: ..."), which pages and the API showed; it gives way to a plain sentence (the
# details were logged when the run failed). See learning.0010 for training and rankings.

import re

from django.db import migrations

RAW_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*: ")
REPLACED = "Failed on an internal error; the server log of that day has the details."


def raw_errors_to_plain(apps, schema_editor):
    ConsolidationRun = apps.get_model("annotation", "ConsolidationRun")
    for pk, error in ConsolidationRun.objects.exclude(error="").values_list("pk", "error"):
        if RAW_EXCEPTION.match(error):
            ConsolidationRun.objects.filter(pk=pk).update(error=REPLACED)


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_job_attempts_and_sent'),
    ]

    operations = [
        migrations.RunPython(raw_errors_to_plain, migrations.RunPython.noop),
    ]
