"""Composition roots: one per flow, each a function from the flow's settings model to its adapters.

This is the one place that chooses adapters (DynamoDB, S3, Bedrock, Lambda async invoke) and
reads their names from settings: a name the template does not set cannot be wired in by accident.
Handlers call a root once per container, on their first invocation.
"""
