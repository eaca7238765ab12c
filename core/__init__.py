"""The ground floor: configuration, logging, build information and wire names.

Nothing here imports ingest, workers, handlers or the CLI; every other package may import it.
"""
