-- wrk script: POSTs the GraphQL body in BENCH_BODY; reports latency percentiles as JSON.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")
dofile(os.getenv("BENCH_REPORT_LUA"))
