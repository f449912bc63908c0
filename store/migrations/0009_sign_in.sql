-- Web sign-in with the company's IdP (identity/).

-- The groups the IdP named at someone's last sign-in, mapped to policy groups. They count
-- until expires_at (sign-in + oidc.session_ttl): a group removed at the IdP is gone at the
-- next sign-in, or when this lapses, whichever comes first.
CREATE TABLE idp_memberships (
    email        text PRIMARY KEY,
    groups       text[] NOT NULL,
    subject      text NOT NULL,
    signed_in_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);

-- Web console sessions. The cookie carries a random id and an HMAC of it; only the id's
-- SHA-256 is kept, so a copy of this table signs nobody in. Logout sets revoked_at.
CREATE TABLE web_sessions (
    id_sha256   bytea PRIMARY KEY,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX web_sessions_email ON web_sessions (email);

-- Sign-ins under way: the state sent to the IdP (hashed), the nonce its ID token must
-- carry and the PKCE verifier. A state is used once; used_at tells a replay from a typo.
CREATE TABLE oidc_logins (
    state_sha256  bytea PRIMARY KEY,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    next_path     text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

-- The key that signs web session cookies, made by the first gateway process that needs it
-- and shared by all (oidc.cookie_secret, when set, is used instead).
CREATE TABLE web_secrets (
    name    text PRIMARY KEY,
    secret  bytea NOT NULL
);
