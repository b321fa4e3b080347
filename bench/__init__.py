"""`make bench`: figures for the streaming path, beside a FastAPI + uvicorn reference."""
