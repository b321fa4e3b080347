"""Operator tools for the deployed stack (boto3 only, so each also runs against the local stack)."""
