"""Background work: the dramatiq broker, the one job actor, and the sweep.

Actors are thin: they take a job id, and :func:`billbox.jobs.run_job`
loads the row, runs the handler registered for its kind and records the
outcome. Nothing is built at import time; :func:`workers.app.build` does
it from settings.
"""
