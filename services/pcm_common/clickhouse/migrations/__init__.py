"""Numbered schema migrations (NNNN_name.py with STATEMENTS); see pcm_common.clickhouse.migrate."""
