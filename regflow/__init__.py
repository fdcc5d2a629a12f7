"""regflow: market-regulation enforcement and emergency response on Prefect 3.

The package holds the application's edges: settings, the error tree, the CLI, the
watcher and the loopback inbox. Domain rules live in `rules`, tables in `storage`,
side effects in `tasks`, lifecycles in `flows`.
"""
