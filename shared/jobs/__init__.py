"""Work handed off after a response: a port, and the Lambda async-invoke adapter behind it."""

from shared.jobs.port import JobMessage, JobQueue

__all__ = ["JobMessage", "JobQueue"]
