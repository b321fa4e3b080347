"""The DynamoDB adapters of the store ports: one single table, keys in `keys`, idioms in `table`."""
