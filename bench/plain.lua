-- wrk script: the URL as given, nothing else; prints the summary as one JSON line for bench/streaming.py.
function done(summary, latency, requests)
    io.write(string.format(
        'BENCH-RESULT {"requests":%d,"bytes":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,' ..
        '"timeouts":%d,"p50_us":%d,"p99_us":%d}\n',
        summary.requests, summary.bytes, summary.duration, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
        latency:percentile(50), latency:percentile(99)))
end
