"""The non-streaming REST API (CONTRACT.md section 3) on Powertools' HTTP API resolver.

`app` assembles the resolver; `paths` declares every route once; `routing` turns a route into a
Powertools endpoint with typed path parameters and the caller check; `coaches`, `creator_sessions`
and `config` hold the endpoints; `bodies` parses request bodies; `errors` maps every failure onto
the contract's error shape. No boto3 here: the repositories come in through `Services`.
"""
