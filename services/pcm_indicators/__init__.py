"""The indicators exchange: values entities self-report with evidence, corrections kept as
history, and the oversight body's review."""
