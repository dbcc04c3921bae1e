# Training runs and pool rankings join the one job lifecycle (apps/projects/jobs.py).
# 0006 brings the rankings' rows along (a superseded ranking is now "cancelled" rather than
# "failed"); 0007 allows one active ranking per project, as one active training run.
# (PostgreSQL refuses to alter a table whose rows a migration has just updated: schema and
# data go in separate migrations.)

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('learning', '0004_suggestion_moves_to_annotation'),
    ]

    operations = [
        migrations.AddField(
            model_name='poolranking',
            name='heartbeat_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='poolranking',
            name='progress',
            field=models.PositiveSmallIntegerField(default=0, help_text='Percent done.'),
        ),
        migrations.AddField(
            model_name='poolranking',
            name='stage',
            field=models.CharField(blank=True, help_text='What it is doing, or how it ended, for people.', max_length=200),
        ),
        migrations.AddField(
            model_name='poolranking',
            name='started_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='poolranking',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='progress',
            field=models.PositiveSmallIntegerField(default=0, help_text='Percent done.'),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='stage',
            field=models.CharField(blank=True, help_text='What it is doing, or how it ended, for people.', max_length=200),
        ),
        migrations.AlterField(
            model_name='trainingrun',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=20),
        ),
    ]
