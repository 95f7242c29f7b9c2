"""Published catalogue versions: the content of each versioned catalogue file as published, by
whom, when and why. A (catalogue, version) is immutable: new content needs a new version."""

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS catalogue_versions (
        catalogue text NOT NULL,
        version text NOT NULL,
        sha256 text NOT NULL,
        content text NOT NULL,
        author text NOT NULL,
        note text NOT NULL,
        published_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (catalogue, version)
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS catalogue_versions_by_time
        ON catalogue_versions (catalogue, published_at DESC)
    """,
]
