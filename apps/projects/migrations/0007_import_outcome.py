# An import's outcome sentence moves from `message` to `error` (a failed import) or
# `stage` (a finished one); ImportJob.message reads it back.

from django.db import migrations, models


def message_to_error_or_stage(apps, schema_editor):
    ImportJob = apps.get_model("projects", "ImportJob")
    ImportJob.objects.filter(state="failed").update(error=models.F("message"))
    ImportJob.objects.filter(state="succeeded").update(stage=models.F("message"), progress=100)


def error_or_stage_to_message(apps, schema_editor):
    ImportJob = apps.get_model("projects", "ImportJob")
    ImportJob.objects.filter(state="failed").update(message=models.F("error"))
    ImportJob.objects.filter(state="succeeded").update(message=models.F("stage"))


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0006_job_lifecycle'),
    ]

    operations = [
        migrations.RunPython(message_to_error_or_stage, error_or_stage_to_message),
    ]
