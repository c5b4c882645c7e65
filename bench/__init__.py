"""Benchmark harness: generate reports at scale, time the dashboard queries and ingest.

Run ``python -m bench --database-url postgresql://... --create-db`` (see ``bench/README.md``).
The harness only ever writes into a database it created itself and marked as a benchmark
database; it refuses to generate data into anything else.
"""
