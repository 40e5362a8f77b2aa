-- Back-Channel Logout when a portal session simply expires: each token keeps when the portal
-- session it was issued in expires (its grant's `session_expires_at`; none for CIBA), so the
-- upkeep can queue the logouts of the sessions that expired since its last look.
ALTER TABLE oidc_tokens ADD COLUMN session_expires_at BIGINT;
CREATE INDEX oidc_tokens_session_expiry ON oidc_tokens (session_expires_at)
    WHERE session_expires_at IS NOT NULL;
