-- The ConsentID login request whose approval made a session (issue 23, RFC 9396): a service's
-- transaction is approved only by the login that showed its text on the phone.
ALTER TABLE sessions ADD COLUMN login_txn TEXT;
