from django.db import migrations


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
        ('learning', '0005_job_lifecycle'),
    ]

    operations = [
        migrations.RunPython(rankings_forwards, rankings_backwards),
    ]
