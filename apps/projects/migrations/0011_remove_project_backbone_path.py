from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0010_project_backbone_from_path'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='project',
            name='backbone_path',
        ),
    ]
