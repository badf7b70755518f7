"""The pure engine: definitions, stage machine, caps, send windows, retries.

Nothing here imports Flask or SQLAlchemy or reads the clock: every function takes
``now`` (an aware UTC datetime) and returns a value.
"""
