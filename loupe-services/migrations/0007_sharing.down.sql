ALTER TABLE api_keys DROP COLUMN query_id;
DROP TABLE embedding_secrets;
DROP TABLE share_refreshes;
DROP TABLE shares;
ALTER TABLE runs DROP COLUMN restrictions;
ALTER TABLE runs DROP COLUMN context;
ALTER TABLE datasources DROP COLUMN user_settings;
ALTER TABLE datasource_grants DROP COLUMN rules;
ALTER TABLE users DROP COLUMN attributes;
