from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0007_import_outcome'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='importjob',
            name='message',
        ),
    ]
