STATEMENTS = (
    "CREATE TABLE half_done (id integer PRIMARY KEY)",
    "INSERT INTO half_done (id) VALUES (1)",
    "INSERT INTO half_done (id) VALUES (1)",  # duplicate key: the migration fails here
)
