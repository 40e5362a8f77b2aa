-- An OAuth authorisation request waiting for the user's ConsentID login (issue 22): the
-- browser's `next` cookie holds only a random id, whose SHA-256 keys the row, so nothing of the
-- request's query (its `state`, chosen by whoever made the link) reaches a cookie. A row lives
-- ten minutes and is taken once; expired rows are deleted whenever a new one is stored.
CREATE TABLE oauth_pending (
    id_hash TEXT PRIMARY KEY,
    query TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oauth_pending_by_expiry ON oauth_pending (expires_at);
