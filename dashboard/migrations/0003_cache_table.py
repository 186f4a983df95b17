from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    """Make the database cache's table, so ``migrate`` alone readies a deployment without Redis."""
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("dashboard", "0002_audit_form_token")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
