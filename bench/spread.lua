-- wrk script: as plain.lua, and with $WRK_ADDRS (space-separated ip:port) each thread i connects
-- to address i (round robin) instead of the URL's: one wrk spreads its connections over several
-- servers exactly as evenly as its threads (bench/service_traffic.py's direct side).
dofile(os.getenv("BENCH_DIR") .. "/plain.lua")

local addrs = {}
for a in string.gmatch(os.getenv("WRK_ADDRS") or "", "%S+") do
    local host, port = a:match("^(.+):(%d+)$")
    addrs[#addrs + 1] = wrk.lookup(host, port)[1]
end
local started = 0

function setup(thread)
    started = started + 1
    if #addrs > 0 then
        thread.addr = addrs[(started - 1) % #addrs + 1]
    end
end
