"""The local dev stack: everything `make dev` runs on this machine, with no AWS and no Docker."""
