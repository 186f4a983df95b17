from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("automation", "0001_initial")]

    operations = [
        migrations.RenameField("webhookendpoint", "secret", "secret_encrypted"),
        migrations.AlterField("webhookendpoint", "secret_encrypted", models.CharField(max_length=400)),
    ]
