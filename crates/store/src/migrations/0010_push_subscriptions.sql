-- Web Push subscriptions (RFC 8030, RFC 8291): one per ConsentID device, replaced when the
-- device registers again. The endpoint is the push service's URL; p256dh and auth are the
-- browser's public key and authentication secret that the messages are encrypted to.
CREATE TABLE push_subscriptions (
    device_id TEXT PRIMARY KEY REFERENCES devices(id),
    endpoint TEXT NOT NULL,
    p256dh BLOB NOT NULL,
    auth BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
