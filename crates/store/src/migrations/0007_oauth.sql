-- OAuth 2.0 authorisation codes of the CSC API (RFC 6749 §4.1 with PKCE, RFC 7636): only the
-- code's hash is kept; a code lives one minute and is exchanged once.
CREATE TABLE oauth_codes (
    code_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The client a token was issued to through OAuth (shown in ConsentID as who asks).
ALTER TABLE api_tokens ADD COLUMN client_id TEXT;
