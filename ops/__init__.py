"""Operating the platform's servers and processes: the team profile, the UIs, child processes."""
