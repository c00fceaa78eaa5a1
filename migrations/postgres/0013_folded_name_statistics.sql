-- Segments compare customers' names and emails with ASCII case folded
-- (`lower(name COLLATE "C")`), an expression PostgreSQL keeps no statistics of
-- unless told: it guessed that `email contains ".example"` kept 20 of 200,000
-- customers (56,000 did), and looked each one's related rows up in turn.
-- Statistics of the expressions (gathered by ANALYZE, which segd runs after a
-- migration, and by autovacuum) let it estimate such tests from the data.
-- PostgreSQL keeps statistics of expressions since version 14; an older server
-- goes without (and guesses, as before).
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'CREATE STATISTICS IF NOT EXISTS customers_name_folded ON (lower(name COLLATE "C")) FROM customers';
        EXECUTE 'CREATE STATISTICS IF NOT EXISTS customers_email_folded ON (lower(email COLLATE "C")) FROM customers';
    END IF;
END
$$;
