"""The benchmark dashboard (`pcm-benchmark web`): server-rendered HTML over the results in
ClickHouse, for the oversight body (every entity, national ranking, standards) and for each entity
(its own page; of its peers only anonymised distributions). Signed in with the same bearer tokens
as the gRPC API, kept in a server-side session."""
