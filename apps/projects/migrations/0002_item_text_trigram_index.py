"""On PostgreSQL, a trigram index makes the items page's text search (``icontains``,
which Django writes as ``UPPER(text) LIKE UPPER('%term%')``) an index scan instead of
reading every item. Other databases skip both steps."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEX = "item_text_upper_trgm"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON projects_item USING gin (UPPER(text) gin_trgm_ops)"
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create_index, drop_index),
    ]
