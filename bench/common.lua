-- Shared by the catalog benchmark's wrk scripts (bench/catalog.sh).
-- Every script builds its requests up front (init) so that the client spends about the same
-- CPU per request in every figure, the /healthz reference included: on a 2-core machine wrk
-- and the server share the CPUs, so a cheaper client would flatter the reference.

local token = os.getenv("BENCH_TOKEN") or "benchtok"
wrk.headers["X-Auth-Token"] = token
-- The web console's pages are read with its session cookie (bench/console.sh).
if os.getenv("BENCH_COOKIE") then wrk.headers["Cookie"] = os.getenv("BENCH_COOKIE") end

local thread_count = 0
function setup(thread)
   thread_count = thread_count + 1
   thread:set("tid", thread_count)
end

-- Reads one token per line (ids) from the file named by an environment variable.
function read_lines(env)
   local path = os.getenv(env)
   assert(path, env .. " is not set")
   local lines = {}
   for line in io.lines(path) do
      if line ~= "" then lines[#lines + 1] = line end
   end
   assert(#lines > 0, path .. " is empty")
   return lines
end

-- One line the benchmark script parses; latencies in microseconds.
function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "RESULT requests=%d duration_us=%d rps=%.1f mean_us=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, summary.duration, summary.requests / secs, latency.mean,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
