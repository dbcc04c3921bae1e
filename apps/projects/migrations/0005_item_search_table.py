"""On PostgreSQL, move the trigram index of item texts to a side table.

A GIN trigram index on ``projects_item`` made every update of an item row (a lease, a
submit, a new priority) extract and insert a few hundred trigrams again, because an
update of an indexed row (priority is in the queue index) is never HOT: re-ranking
100,000 items took 12 s, 9 s of them in that index. The texts never change after import,
so they are indexed once in ``projects_item_search``, kept in step by triggers (statement
triggers for inserts, COPY included, and deletes; a row trigger for the rare text edit;
a truncate trigger for test flushes). Other databases search ``projects_item`` directly."""

from django.db import migrations

FORWARD = """
CREATE TABLE IF NOT EXISTS projects_item_search (item_id bigint PRIMARY KEY, text text NOT NULL);
INSERT INTO projects_item_search (item_id, text) SELECT id, text FROM projects_item ON CONFLICT DO NOTHING;
CREATE INDEX IF NOT EXISTS item_search_upper_trgm ON projects_item_search USING gin (UPPER(text) gin_trgm_ops);
DROP INDEX IF EXISTS item_text_upper_trgm;

CREATE OR REPLACE FUNCTION projects_item_search_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO projects_item_search (item_id, text) SELECT id, text FROM new_items
    ON CONFLICT (item_id) DO UPDATE SET text = EXCLUDED.text;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION projects_item_search_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM projects_item_search WHERE item_id IN (SELECT id FROM old_items);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION projects_item_search_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE projects_item_search SET text = NEW.text WHERE item_id = NEW.id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION projects_item_search_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE projects_item_search;
    RETURN NULL;
END $$;

CREATE TRIGGER item_search_insert AFTER INSERT ON projects_item
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION projects_item_search_insert();
CREATE TRIGGER item_search_delete AFTER DELETE ON projects_item
    REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION projects_item_search_delete();
CREATE TRIGGER item_search_edit AFTER UPDATE OF text ON projects_item
    FOR EACH ROW WHEN (OLD.text IS DISTINCT FROM NEW.text) EXECUTE FUNCTION projects_item_search_edit();
CREATE TRIGGER item_search_truncate AFTER TRUNCATE ON projects_item
    FOR EACH STATEMENT EXECUTE FUNCTION projects_item_search_truncate();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS item_search_insert ON projects_item;
DROP TRIGGER IF EXISTS item_search_delete ON projects_item;
DROP TRIGGER IF EXISTS item_search_edit ON projects_item;
DROP TRIGGER IF EXISTS item_search_truncate ON projects_item;
DROP FUNCTION IF EXISTS projects_item_search_insert();
DROP FUNCTION IF EXISTS projects_item_search_delete();
DROP FUNCTION IF EXISTS projects_item_search_edit();
DROP FUNCTION IF EXISTS projects_item_search_truncate();
DROP TABLE IF EXISTS projects_item_search;
CREATE INDEX IF NOT EXISTS item_text_upper_trgm ON projects_item USING gin (UPPER(text) gin_trgm_ops);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("projects", "0004_learning")]

    operations = [migrations.RunPython(forward, backward)]
