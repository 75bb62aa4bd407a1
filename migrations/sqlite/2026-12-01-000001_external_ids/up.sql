-- Accounts and contacts get the key another system knows them by, so imports can
-- match and reference them (`account_external_id`).
ALTER TABLE accounts ADD COLUMN external_id TEXT;
ALTER TABLE contacts ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX accounts_external_id ON accounts (external_id);
CREATE UNIQUE INDEX contacts_external_id ON contacts (external_id);
