"""pcm_common."""
