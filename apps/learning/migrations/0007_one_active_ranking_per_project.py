from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('learning', '0006_rankings_as_jobs'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='poolranking',
            constraint=models.UniqueConstraint(condition=models.Q(('state__in', ['queued', 'running'])), fields=('project',), name='one_active_ranking_per_project'),
        ),
    ]
