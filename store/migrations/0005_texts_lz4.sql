-- A batch's SQL texts are compressed with lz4 too where the server was built with it
-- (0004 did it for the events): the texts of a busy session's batch are toasted, and pglz
-- costs the store several times the CPU.
DO $$
BEGIN
    ALTER TABLE statement_batches ALTER COLUMN texts SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- built without lz4: pglz stays
END
$$;
