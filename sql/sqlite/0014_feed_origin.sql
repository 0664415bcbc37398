-- PostgreSQL's 0014 puts the origin node in the change feed's notification.  SQLite has one
-- coordinator and an in-process feed: nothing to do here; the file keeps the two folders'
-- numbers aligned.
SELECT 1;
