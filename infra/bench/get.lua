-- wrk script: GETs the URL wrk was given; reports latency percentiles as JSON.
dofile(os.getenv("BENCH_REPORT_LUA"))
