-- S3 access keys are tokens with an access key id and a secret access key. SigV4 needs the
-- secret itself on the server, so it is sealed under the master key (envelope encryption: the
-- data key wrapped under master key `key_id` in `wrapped_key`, the secret in `s3_secret`);
-- the names `key_id`/`wrapped_key` are what master key rotation and the key check read in
-- every sealed table. API tokens leave all four NULL (NULLs never collide in a unique index).
ALTER TABLE tokens ADD COLUMN s3_access_key_id TEXT;
ALTER TABLE tokens ADD COLUMN key_id TEXT;
ALTER TABLE tokens ADD COLUMN wrapped_key BYTEA;
ALTER TABLE tokens ADD COLUMN s3_secret BYTEA;
CREATE UNIQUE INDEX tokens_s3_access_key_id ON tokens (s3_access_key_id);
