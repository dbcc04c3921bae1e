# Training runs and pool rankings join the one job lifecycle (apps/projects/jobs.py). A
# superseded ranking is now "cancelled" rather than "failed", and a project has at most
# one active ranking, as it has one active training run.

from django.db import migrations, models


def rankings_forwards(apps, schema_editor):
    PoolRanking = apps.get_model("learning", "PoolRanking")
    PoolRanking.objects.filter(state="failed", error__startswith="Superseded").update(state="cancelled")
    for ranking in PoolRanking.objects.all().only("pk", "chunks_done", "chunks_total", "created_at"):
        progress = round(100 * len(ranking.chunks_done) / ranking.chunks_total) if ranking.chunks_total else 100
        PoolRanking.objects.filter(pk=ranking.pk).update(progress=progress, started_at=ranking.created_at)
    # One running ranking per project: the newest one stands, older ones were superseded.
    kept = set()
    for ranking in PoolRanking.objects.filter(state="running").order_by("-created_at", "-id"):
        if ranking.project_id in kept:
            PoolRanking.objects.filter(pk=ranking.pk).update(state="cancelled", error="Superseded by a newer ranking.")
        kept.add(ranking.project_id)


def rankings_backwards(apps, schema_editor):
    PoolRanking = apps.get_model("learning", "PoolRanking")
    PoolRanking.objects.filter(state="cancelled").update(state="failed")


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
        migrations.RunPython(rankings_forwards, rankings_backwards),
        migrations.AddConstraint(
            model_name='poolranking',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['queued', 'running'])), fields=('project',), name='one_active_ranking_per_project'),
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
