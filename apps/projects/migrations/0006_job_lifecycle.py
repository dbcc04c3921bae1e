# Imports join the one job lifecycle (apps/projects/jobs.py): stage, progress, error and
# heartbeat like every background job. 0007 moves each import's outcome sentence from
# `message` to `error` or `stage`, and 0008 drops `message`. (PostgreSQL refuses to alter
# a table whose rows a migration has just updated: schema and data go in separate migrations.)

from django.db import migrations, models


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
        migrations.AlterField(
            model_name='importjob',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20),
        ),
    ]
