DROP INDEX contacts_external_id;
DROP INDEX accounts_external_id;
ALTER TABLE contacts DROP COLUMN external_id;
ALTER TABLE accounts DROP COLUMN external_id;
