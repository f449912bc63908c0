-- Statement batches are written only by the gateway, as JSON it encodes itself: keep them
-- as text, so the store does not parse every batch on insert, and compress them with lz4
-- where the server was built with it (cheaper than the default pglz). On a store that
-- shares its machine with the databases behind the gateway, that CPU is theirs. Readers
-- cast to json: the view below, and the session search of jitgate/pages.py.
DROP VIEW statement_events;
ALTER TABLE statement_batches ALTER COLUMN events TYPE text;
DO $$
BEGIN
    ALTER TABLE statement_batches ALTER COLUMN events SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- built without lz4: pglz stays
END
$$;

CREATE VIEW statement_events AS
SELECT b.session_id,
       (e ->> 0)::integer                                    AS seq,
       b.texts[(e ->> 1)::integer + 1]                       AS sql,
       e ->> 2                                               AS protocol,
       e ->> 3                                               AS statement_class,
       e ->> 4                                               AS decision,
       ARRAY(SELECT json_array_elements_text(e -> 5))        AS reasons,
       e ->> 6                                               AS outcome,
       to_timestamp((e ->> 7)::float8 / 1e6)                 AS started_at,
       to_timestamp(((e ->> 7)::float8 + (e ->> 8)::float8) / 1e6) AS ended_at,
       (e ->> 9)::bigint                                     AS rows,
       e ->> 10                                              AS command_tag,
       e ->> 11                                              AS sqlstate,
       (e ->> 12)::bigint                                    AS request_id,
       CASE WHEN json_typeof(e -> 13) = 'object' THEN e -> 13 END AS masked
FROM statement_batches AS b
CROSS JOIN LATERAL json_array_elements(b.events::json) AS e;
