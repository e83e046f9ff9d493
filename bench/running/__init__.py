"""Running a suite: the run (`runner`: data, plan, inputs checked, cells computed), the executor that walks the
plan's cells (`executor`; Ray's is in `bench.distributed`), the home lock, the runs' bookkeeping and the
environment's faults as one-line errors."""
