"""The HTTP edge of a function: events, auth, routes, request bodies and error responses."""
