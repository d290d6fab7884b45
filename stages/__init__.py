"""The steps of a run, each a small function over plain data: ingest, build graph, infer,
carry posterior, evaluate, log.  Stages know nothing of message algebra."""
