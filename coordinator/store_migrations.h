/*
 * store_migrations: the schema migrations of sql/<backend>/ compiled into the coordinator
 * (store_migrations.c is generated at build time by cmake/gen_migrations.cmake from each
 * sql/<backend>/NNNN_name.sql file), so that cacheout-coordinator runs from any folder with no
 * files beside it.  SQL_DIR still overrides them (coord_store_migrate).  Read-only; any thread.
 */
#ifndef COORD_STORE_MIGRATIONS_H
#define COORD_STORE_MIGRATIONS_H

/** One migration file as it was at build time. */
struct store_migration {
    const char *backend; /* folder name under sql/: "sqlite" or "postgres" */
    const char *name;    /* file name, "NNNN_what.sql" */
    const char *sql;     /* the file's text */
};

/** Every migration of every backend, in no particular order, ended by a row of NULLs. */
extern const struct store_migration store_migrations[];

#endif
