"""pcm_intake."""
