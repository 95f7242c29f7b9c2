"""The national benchmark: every entity assessed against the PCM quality standards, ranked
within its peer group and nationally (issue 13; today the pure assessment and ranking rules)."""
