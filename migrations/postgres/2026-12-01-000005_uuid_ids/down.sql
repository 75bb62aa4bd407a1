-- Back to text ids: every uuid column of the schema becomes TEXT again, foreign keys
-- dropped and added back around the change.
DO $$
DECLARE
    fk RECORD;
    t RECORD;
    fks TEXT[][] := '{}';
BEGIN
    FOR fk IN
        SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def
        FROM pg_constraint
        WHERE contype = 'f' AND connamespace = current_schema()::regnamespace
    LOOP
        fks := fks || ARRAY[[fk.tbl, fk.conname, fk.def]];
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
    END LOOP;

    FOR t IN
        SELECT table_name,
               string_agg(format('ALTER COLUMN %I TYPE text', column_name), ', ' ORDER BY ordinal_position) AS changes
        FROM information_schema.columns
        WHERE table_schema = current_schema() AND data_type = 'uuid'
        GROUP BY table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.table_name, t.changes);
    END LOOP;

    FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fks[i][1], fks[i][2], fks[i][3]);
    END LOOP;
END $$;
