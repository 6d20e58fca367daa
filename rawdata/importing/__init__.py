"""The parts of `demand import`: tables, reading, checks, storing."""
