"""DynamoDB persistence: the table's shape and the repositories built on it."""
