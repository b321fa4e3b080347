"""The coach creator interview: its questions, sophistication tracking and prompts (pure, no I/O)."""
