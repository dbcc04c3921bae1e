# Pre-labels (Suggestion) move to the annotation app, which shows them. Only Django's
# record of the model leaves here; the table and its rows stay, and
# annotation.0004 takes the model over and renames the table.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('learning', '0003_pool_ranking'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Suggestion')],
            database_operations=[],
        ),
    ]
