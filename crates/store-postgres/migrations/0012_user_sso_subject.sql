-- The identity-provider account a user was created for by single sign-on (`issuer#sub`): a
-- later sign-in finds the user by it, and a user made any other way is never signed in by a
-- provider account that merely has the same name.
ALTER TABLE users ADD COLUMN sso_subject TEXT;
CREATE UNIQUE INDEX users_sso_subject ON users (sso_subject);
