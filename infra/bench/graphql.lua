-- wrk script: POSTs the GraphQL body in BENCH_BODY; reports latency percentiles as JSON.
-- An answer whose body carries "errors" (a GraphQL error, HTTP 200) counts as an error too.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BENCH_BODY")

threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  graphql_errors = 0
end

function response(status, headers, body)
  if status == 200 and string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end

dofile(os.getenv("BENCH_REPORT_LUA"))
