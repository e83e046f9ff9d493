"""Running a suite's cells on many processes or machines: the Ray executor (`pip install -e ".[ray]"`).

`session` starts or joins a Ray cluster (its files in a temporary folder, dashboard and token auth off),
`tracker` is the small actor that records where each cell runs, `ray_executor` schedules the cell graph.
Nothing here is imported unless `--executor ray` is asked for.
"""
