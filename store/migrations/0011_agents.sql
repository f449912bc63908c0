-- Agents acting for the human who started them (identity/delegations.py), and tokens the
-- gateway issues itself after an IdP sign-in (identity/token_exchange.py).

-- An agent's token is a row of access_tokens like its human's: ``email`` is the human
-- (the subject), ``act`` the agent in the shape of RFC 8693's act claim ({"sub": name},
-- with "iss" when another issuer vouched for it). ``resources`` and ``classes`` narrow
-- what the human may do (NULL: not narrowed). ``parent_id`` is the human's token it was
-- minted from: revoking that one revokes the agent's too.
ALTER TABLE access_tokens
    ADD COLUMN act        jsonb,
    ADD COLUMN parent_id  bigint REFERENCES access_tokens (id),
    ADD COLUMN resources  text[],
    ADD COLUMN classes    text[];
CREATE INDEX access_tokens_parent ON access_tokens (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX access_tokens_actor ON access_tokens (email, (act ->> 'sub'))
    WHERE act IS NOT NULL AND revoked_at IS NULL;

-- Sessions (and with them their statement events) name the agent beside the human.
ALTER TABLE sessions ADD COLUMN agent text;
