-- wrk script: GET objects by name, cycling through the names in the file BENCH_NAMES (one a line).
-- Env: BENCH_NAMES, BENCH_PATH (the collection path with a trailing slash).
local path = os.getenv("BENCH_PATH")
local names = {}
local i = 0
local next_id = 0
id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
end

function init(args)
    for line in io.lines(os.getenv("BENCH_NAMES")) do
        table.insert(names, line)
    end
    i = (id * 7919) % #names  -- threads start at different names
end

function request()
    i = i % #names + 1
    return wrk.format("GET", path .. names[i])
end

function done(summary, latency, requests)
    io.write(string.format(
        'BENCH-RESULT {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"timeouts":%d,' ..
        '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\n',
        summary.requests, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end
