# Imports join the one job lifecycle (apps/projects/jobs.py): stage, progress, error and
# heartbeat like every background job. The outcome sentence moves from `message` to
# `error` (a failed import) or `stage` (a finished one); ImportJob.message reads it back.

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
        ('projects', '0005_item_search_table'),
    ]

    operations = [
        migrations.AddField(
            model_name='importjob',
            name='error',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='progress',
            field=models.PositiveSmallIntegerField(default=0, help_text='Percent done.'),
        ),
        migrations.AddField(
            model_name='importjob',
            name='stage',
            field=models.CharField(blank=True, help_text='What it is doing, or how it ended, for people.', max_length=200),
        ),
        migrations.RunPython(message_to_error_or_stage, error_or_stage_to_message),
        migrations.RemoveField(
            model_name='importjob',
            name='message',
        ),
        migrations.AlterField(
            model_name='importjob',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20),
        ),
    ]
