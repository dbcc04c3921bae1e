# Each project's old backbone folder becomes a name: the configured backbone whose folder it
# is; an empty folder (the packaged model) or a folder the site does not offer becomes the
# default backbone, logged so the operator can add it to QUORUM_BACKBONES and set it again.

import logging
from pathlib import Path

from django.conf import settings
from django.db import migrations

logger = logging.getLogger(__name__)


def _name_of(folder):
    try:
        wanted = Path(folder).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return next((n for n, f in settings.QUORUM_BACKBONES.items() if Path(f).resolve() == wanted), None)


def folder_to_name(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    default = settings.QUORUM_BACKBONE_DEFAULT
    for pk, folder in Project.objects.values_list("pk", "backbone_path"):
        name = _name_of(folder) if folder else default
        if name is None:
            logger.warning("project %s: backbone folder %s is not configured; it now uses %s", pk, folder, default)
            name = default
        Project.objects.filter(pk=pk).update(backbone=name)


def name_to_folder(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    for name, folder in settings.QUORUM_BACKBONES.items():
        Project.objects.filter(backbone=name).update(backbone_path=folder)


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0009_project_backbone'),
    ]

    operations = [
        migrations.RunPython(folder_to_name, name_to_folder),
    ]
