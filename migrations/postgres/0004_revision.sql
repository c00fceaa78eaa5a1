-- Which version of the applied definitions a plan was made against: a random
-- lineage for this database and a revision that every change of
-- segd_definitions advances, segd's own applies and out-of-band edits alike.
-- A saved plan whose version is no longer current is stale.
CREATE TABLE segd_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lineage TEXT NOT NULL,
    revision BIGINT NOT NULL
);
INSERT INTO segd_revision (id, lineage, revision)
    VALUES (1, md5(random()::text || clock_timestamp()::text), 0);
CREATE FUNCTION segd_advance_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE segd_revision SET revision = revision + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER segd_definitions_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segd_definitions
    FOR EACH STATEMENT EXECUTE FUNCTION segd_advance_revision();
