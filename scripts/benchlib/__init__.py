"""Helpers of scripts/bench_search.py: synthetic vectors, stores built without captioning,
index peers, the mount run, and the report."""
