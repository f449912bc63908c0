-- The columns whose values the gateway has masked, by resource and name (learned from
-- results, never configured): a statement that transforms one of them is held for review
-- (guard/transforms.py), so reverse(ssn) reaches an approver instead of the screen.
CREATE TABLE masked_columns (
    resource   text NOT NULL,
    name       text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource, name)
);
