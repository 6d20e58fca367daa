"""The model registry lifecycle: candidate → staging → production → archived, with gates."""
