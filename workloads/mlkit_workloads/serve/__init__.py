"""The real-time scoring service (FastAPI): per-group models from the registry alias, an LRU in
memory, inference events logged off the request path. Entry points: ``runner.build`` and
``runner.main`` (the container); ``mlkit serve --env local`` in the kit."""
