from django.db import migrations


def finished_runs_are_done(apps, schema_editor):
    ConsolidationRun = apps.get_model("annotation", "ConsolidationRun")
    ConsolidationRun.objects.filter(state="succeeded").update(progress=100)


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0005_job_lifecycle_and_answers'),
    ]

    operations = [
        migrations.RunPython(finished_runs_are_done, migrations.RunPython.noop),
    ]
