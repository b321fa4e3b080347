"""The CDK app's stacks and constructs, generated from `functions/catalog.py` and `shared/store/schema.py`."""
