-- A customer's name or email `starts_with` a value (ASCII case-insensitive, as
-- SPEC §2.1 says) compiles to `LIKE 'value%' ESCAPE '\'`, which SQLite reads as a
-- range of an index in the NOCASE collation (its LIKE optimization: a TEXT
-- column, a bound pattern not starting with a wildcard). The segment compiler
-- then lets such a prefix drive a segment's query (see `field_class`).
CREATE INDEX IF NOT EXISTS customers_name_nocase ON customers (name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS customers_email_nocase ON customers (email COLLATE NOCASE);
