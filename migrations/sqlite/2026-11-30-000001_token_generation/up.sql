-- A password change or deactivation moves the generation on; tokens carry the
-- generation they were issued at and stop working once it has moved.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
