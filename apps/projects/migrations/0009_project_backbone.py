# Projects choose a backbone by name from the site's list (platform/backbones.py) instead of
# naming a server folder. The name column comes first; 0010 fills it from the old folder,
# 0011 drops the folder (data moves apart from schema changes, for PostgreSQL).

from django.db import migrations, models

import platform.backbones


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0008_remove_importjob_message'),
    ]

    operations = [
        migrations.AddField(
            model_name='project',
            name='backbone',
            field=models.CharField(default=platform.backbones.backbone_default, help_text='The model that embeds the texts, from the backbones this site offers.', max_length=64),
        ),
    ]
