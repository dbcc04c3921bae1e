# A version records its backbone's name (platform/backbones.py), not the server folder that
# the API used to show: the configured backbone whose folder it is, else "unlisted" (the
# version was trained on a folder the site does not offer; it cannot be loaded any more).

from pathlib import Path

from django.conf import settings
from django.db import migrations

UNLISTED = "unlisted"


def _name_of(folder):
    try:
        wanted = Path(folder).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return next((n for n, f in settings.QUORUM_BACKBONES.items() if Path(f).resolve() == wanted), None)


def folder_to_name(apps, schema_editor):
    ModelVersion = apps.get_model("learning", "ModelVersion")
    for pk, folder in ModelVersion.objects.values_list("pk", "backbone"):
        if folder in settings.QUORUM_BACKBONES:
            continue  # a name already
        ModelVersion.objects.filter(pk=pk).update(backbone=(_name_of(folder) if folder else None) or UNLISTED)


class Migration(migrations.Migration):

    dependencies = [
        ('learning', '0007_one_active_ranking_per_project'),
    ]

    operations = [
        migrations.RunPython(folder_to_name, migrations.RunPython.noop),
    ]
