DROP TABLE stages;
DROP TABLE pipelines;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE server_settings;
