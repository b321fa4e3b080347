"""Code shared by every function: bundled into each function's asset."""
