"""pcm_processor."""
