"""A generic Lambda runtime: the Runtime API loop, its client, the context object, response streams,
and the root logger's output framed on Lambda's telemetry descriptor as the stock runtime frames it.

It knows nothing of HTTP: a handler that streams hands `ResponseStream.start` its own prelude.
Standard library only, so it imports fast and can never drag a function's dependencies into init.
"""
