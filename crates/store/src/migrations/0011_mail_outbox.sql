-- Outgoing mail (DESIGN §7): each message is written here in the use case's transaction, then
-- a background worker delivers it over SMTP, retrying with backoff; `failed` once it gives up.
-- The message is the whole RFC 5322 text; it is emptied once sent (it may carry the agreement).
CREATE TABLE mail_outbox (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    message BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    finished_at BIGINT
);
CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at);
CREATE INDEX mail_outbox_by_user ON mail_outbox (user_id);
