-- Which version of the applied definitions a plan was made against: a random
-- lineage for this database and a revision that every change of
-- segd_definitions advances, segd's own applies and out-of-band edits alike.
-- A saved plan whose version is no longer current is stale.
CREATE TABLE segd_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lineage TEXT NOT NULL,
    revision INTEGER NOT NULL
);
INSERT INTO segd_revision (id, lineage, revision) VALUES (1, lower(hex(randomblob(16))), 0);
CREATE TRIGGER segd_definitions_inserted AFTER INSERT ON segd_definitions
BEGIN
    UPDATE segd_revision SET revision = revision + 1;
END;
CREATE TRIGGER segd_definitions_updated AFTER UPDATE ON segd_definitions
BEGIN
    UPDATE segd_revision SET revision = revision + 1;
END;
CREATE TRIGGER segd_definitions_deleted AFTER DELETE ON segd_definitions
BEGIN
    UPDATE segd_revision SET revision = revision + 1;
END;
