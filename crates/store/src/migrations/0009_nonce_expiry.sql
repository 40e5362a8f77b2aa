-- Every device request deletes the expired nonces before it records its own, inside the write
-- transaction: without this index that is a scan of every nonce of the last two minutes (two
-- per login), while SQLite's one writer waits.
CREATE INDEX used_nonces_by_expiry ON used_nonces (expires_at);
