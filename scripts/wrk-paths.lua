-- wrk script for scripts/bench: cycles through the GET paths listed, one per
-- line, in the file named after "--":
--   wrk -t2 -c100 -d15s --latency -s scripts/wrk-paths.lua http://127.0.0.1:PORT -- FILE
-- Each thread starts at a different place in the list. At the end it prints
-- one machine-readable line:
--   BENCH_RESULT {"requests":..,"duration_us":..,"p50_us":..,"p99_us":..,"max_us":..,
--                 "connect":..,"read":..,"write":..,"timeout":..,"status":..}
-- where "status" counts non-2xx/3xx responses (wrk's own definition).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local reqs = {}
local n, i = 0, 0

function init(args)
   local file = args[1]
   if file == nil then error("usage: ... -s wrk-paths.lua URL -- PATHS_FILE") end
   for line in io.lines(file) do
      if #line > 0 then
         n = n + 1
         -- Requests are formatted once here, not per request.
         reqs[n] = wrk.format("GET", line)
      end
   end
   if n == 0 then error("no paths in " .. file) end
   i = ((tid or 0) * math.floor(n / 2 + 1)) % n
end

function request()
   i = i % n + 1
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
         .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, e.connect, e.read, e.write, e.timeout, e.status))
end
