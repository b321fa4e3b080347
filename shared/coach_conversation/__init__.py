"""The coach conversation: one turn as one pipeline of events, shared by both handlers."""
