"""Benchmarks, run by hand from the project root (`python -m bench.NAME`); not part of the test
suite. bench.pipeline and bench.burst use this machine's Redis (database 13, emptied) and
PostgreSQL (database `bench`, dropped and made again) through bench/common.py; each writes its
figures to bench/results/NAME.json."""
