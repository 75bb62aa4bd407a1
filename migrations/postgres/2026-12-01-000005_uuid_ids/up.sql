-- Record ids become native UUIDs: 16 bytes in every row and index entry instead of 37
-- as text. The service keeps handling ids as their canonical text (see src/storage/uid.rs);
-- SQLite keeps TEXT, so this migration exists on PostgreSQL only.
--
-- The columns: every text column named `id`, `…_id`, `created_by` or `updated_by`, except
-- the ids that are not UUIDs: loss reasons and scoring rules (readable slugs such as
-- 'budget'), external ids, webhook event ids ('msg_…') and the record ids of webhook
-- events and deliveries (kept as the text the payload carries). A stored value that is
-- not a UUID makes the cast, and with it the whole migration, fail: nothing is half done.
--
-- Foreign keys are dropped, the columns of each table changed in one rewrite, and the
-- keys added back as they were; the indexes are rebuilt by the type change itself.
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
               string_agg(format('ALTER COLUMN %I TYPE uuid USING %I::uuid', column_name, column_name),
                          ', ' ORDER BY ordinal_position) AS changes
        FROM information_schema.columns
        WHERE table_schema = current_schema()
          AND data_type = 'text'
          AND (column_name IN ('id', 'created_by', 'updated_by') OR column_name LIKE '%\_id')
          AND column_name NOT IN ('external_id', 'record_id', 'lost_reason_id')
          AND table_name NOT IN ('loss_reasons', 'scoring_rules', 'webhook_events')
        GROUP BY table_name
    LOOP
        EXECUTE format('ALTER TABLE %I %s', t.table_name, t.changes);
    END LOOP;

    FOR i IN 1 .. coalesce(array_length(fks, 1), 0) LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fks[i][1], fks[i][2], fks[i][3]);
    END LOOP;
END $$;
