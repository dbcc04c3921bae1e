# Pre-labels (Suggestion) move here from the learning app. The model is recorded as it
# stood in learning (on the table learning_suggestion, which learning.0004 left behind
# with its rows), and then its table is renamed to annotation_suggestion.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0003_learning'),
        ('learning', '0004_suggestion_moves_to_annotation'),
        ('projects', '0005_item_search_table'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Suggestion',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('parts', models.JSONField(default=list)),
                        ('confidence', models.FloatField(blank=True, null=True)),
                        ('scores', models.JSONField(blank=True, default=dict)),
                        ('source', models.CharField(help_text='What made it, e.g. a model version.', max_length=100)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('item', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='suggestion', to='projects.item')),
                    ],
                    options={'db_table': 'learning_suggestion'},
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name='suggestion', table=None),
    ]
