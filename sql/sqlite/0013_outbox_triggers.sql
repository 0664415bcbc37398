-- PostgreSQL's 0013 makes the change feed's outbox rows part of the changing transaction
-- (triggers).  SQLite has one coordinator and an in-process feed: nothing to do here; the file
-- keeps the two folders' numbers aligned.
SELECT 1;
