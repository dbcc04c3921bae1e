# Consolidation runs join the one job lifecycle (apps/projects/jobs.py); consensus labels
# and pre-labels keep their answer in an AnswerField (the same JSON, read as an Answer).
# 0006 marks the finished runs done (data apart from schema, for PostgreSQL).

import apps.projects.answers
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0004_suggestion_from_learning'),
    ]

    operations = [
        migrations.AddField(
            model_name='consolidationrun',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='consolidationrun',
            name='progress',
            field=models.PositiveSmallIntegerField(default=0, help_text='Percent done.'),
        ),
        migrations.AddField(
            model_name='consolidationrun',
            name='stage',
            field=models.CharField(blank=True, help_text='What it is doing, or how it ended, for people.', max_length=200),
        ),
        migrations.AlterField(
            model_name='consolidationrun',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20),
        ),
        migrations.AlterField(
            model_name='itemconsensus',
            name='parts',
            field=apps.projects.answers.AnswerField(default=apps.projects.answers.Answer),
        ),
        migrations.AlterField(
            model_name='suggestion',
            name='parts',
            field=apps.projects.answers.AnswerField(default=apps.projects.answers.Answer),
        ),
    ]
