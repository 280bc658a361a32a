"""Benchmarks of ecr-ocir-sync against skopeo on local registries.

Run from the project root: ``.venv/bin/python -m bench.run [--quick | --large] [--write]``.
"""
