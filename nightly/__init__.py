"""The nightly cycle: everything a night runs, in order, as one idempotent command."""
