-- SQLite's migration 0011 indexes customers' names and emails for `starts_with`.
-- PostgreSQL gets no index here: its prefix test (`left(lower(name COLLATE "C"), n)
-- = value`) is served by none, and an index of `lower(name COLLATE "C")` would also
-- serve `=` and `in` lists, probing the customers once per listed value.
SELECT 1;
