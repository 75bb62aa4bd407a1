DROP TABLE stages;
DROP TABLE pipelines;
DROP TABLE api_keys;
ALTER TABLE teams DROP CONSTRAINT teams_manager_fk;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE server_settings;
