-- Logins without a username (issue 10): the browser shows a QR code that changes every second,
-- or, on a phone, a link to ConsentID. A row is one such login waiting for a phone; the phone
-- that scans it (or opens the link) makes the ordinary login transaction, `txn_id`, bound to
-- the same browser session. `secret` (32 random bytes) makes the QR frames' and the link's MAC.
CREATE TABLE qr_logins (
    id TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    session_binding TEXT NOT NULL,
    browser TEXT NOT NULL,
    ip TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    txn_id TEXT REFERENCES transactions(id)
);
CREATE INDEX qr_logins_by_expiry ON qr_logins (expires_at);
