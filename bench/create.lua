-- wrk script: POST unique objects, stop after exactly BENCH_COUNT responses.
-- Env: BENCH_COUNT (responses to wait for), BENCH_PREFIX (name prefix), BENCH_BODY (file with the
-- JSON body; the text __NAME__ is replaced by the object's name). Run with one thread (-t1): the
-- counters below are per thread. When the BENCH_COUNT-th response arrives the thread records the time
-- (CLOCK_MONOTONIC, comparable with Python's time.monotonic) and stops; it prints BENCH-DONE so the
-- driver can SIGINT wrk at once (wrk's main thread otherwise sleeps for the whole -d duration).
-- The up to (connections - 1) requests in flight at that moment still reach the server (they are
-- real creates with further unique names), but are not in the count or in the throughput.
-- wrk calls request() once per thread before connecting and throws that request away, so one name
-- (the first) is never created; the driver takes the names that exist from a LIST.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

local count = tonumber(os.getenv("BENCH_COUNT") or "2000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"
local head, tail
sent = 0
responses = 0
ok = 0
bad = 0
last_bad = 0
t_start = 0
t_end = 0
done_flag = false

function init(args)
    local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
    local body = f:read("*a")
    f:close()
    local at = string.find(body, "__NAME__", 1, true)
    head = string.sub(body, 1, at - 1)
    tail = string.sub(body, at + 8)
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    sent = sent + 1
    if sent == 1 then t_start = now() end
    return wrk.format(nil, nil, nil, head .. prefix .. sent .. tail)
end

function response(status, headers, body)
    if done_flag then return end
    responses = responses + 1
    if status == 201 then ok = ok + 1 else bad = bad + 1; last_bad = status end
    if responses >= count then
        t_end = now()
        done_flag = true
        io.write("BENCH-DONE\n")
        io.flush()
        wrk.thread:stop()
    end
end

function done(summary, latency, requests)
    local t = threads[1]
    io.write(string.format(
        'BENCH-RESULT {"ok":%d,"bad":%d,"last_bad":%d,"sent":%d,"t_start":%.6f,"t_end":%.6f,' ..
        '"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,"recorded":%d,"timeouts":%d}\n',
        t:get("ok"), t:get("bad"), t:get("last_bad"), t:get("sent"), t:get("t_start"), t:get("t_end"),
        latency:percentile(50), latency:percentile(99), latency.mean, latency.max, summary.requests,
        summary.errors.timeout))
end
