-- A mixed load across the front-ends for tests/e2e/test_load.py: reads through OpenStack, Avi, ZStack and
-- Danube, downloads of known images, metadata writes (create, PATCH) and uploads into a pool of queued
-- images (each thread uploads its own share, once each). Every non-2xx answer is counted as an error.
-- Environment: LOAD_PLAN (a file of lines "kind<TAB>value"), LOAD_PAYLOAD (the bytes every upload sends).

local plan = { get = {}, download = {}, pool = {} }
local headers = {}
for line in io.lines(os.getenv("LOAD_PLAN")) do
   local kind, value = line:match("^(%S+)\t(.*)$")
   if kind == "header" then
      local front, name, v = value:match("^(%S+)\t([^:]+): (.*)$")
      headers[front] = headers[front] or {}
      headers[front][name] = v
   elseif kind then
      local list = plan[kind] or {}
      plan[kind] = list
      list[#list + 1] = value
   end
end
local payload = io.open(os.getenv("LOAD_PAYLOAD"), "rb"):read("*all")

local threads = {}
local count = 0
function setup(thread)
   count = count + 1
   thread:set("tid", count)
   threads[#threads + 1] = thread
end

function init(args)
   requests_sent, errors, uploads, statuses = 0, 0, 0, {}
   nthreads = tonumber(os.getenv("LOAD_THREADS") or "2")
   next_pool = tid
   step = 0
end

local function with(front, extra)
   local h = {}
   for k, v in pairs(headers[front] or {}) do h[k] = v end
   for k, v in pairs(extra or {}) do h[k] = v end
   return h
end

function request()
   step = step + 1
   requests_sent = requests_sent + 1
   local r = step % 10
   if r == 0 and next_pool <= #plan.pool then
      local id = plan.pool[next_pool]
      next_pool = next_pool + nthreads
      uploads = uploads + 1
      return wrk.format("PUT", "/v2/images/" .. id .. "/file", with("openstack", { ["Content-Type"] = "application/octet-stream" }), payload)
   elseif r == 1 then
      return wrk.format("POST", "/v2/images", with("openstack", { ["Content-Type"] = "application/json" }),
                        '{"name": "load-' .. tid .. '-' .. step .. '", "disk_format": "raw", "container_format": "bare"}')
   elseif r == 2 or r == 3 then
      local id = plan.download[(step % #plan.download) + 1]
      return wrk.format("GET", "/v2/images/" .. id .. "/file", with("openstack"))
   else
      local entry = plan.get[(step % #plan.get) + 1]
      local front, path = entry:match("^(%S+)\t(.*)$")
      return wrk.format("GET", path, with(front))
   end
end

function response(status, hdrs, body)
   if status < 200 or status > 299 then
      errors = errors + 1
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local errs, ups = 0, 0
   for _, t in ipairs(threads) do
      errs = errs + t:get("errors")
      ups = ups + t:get("uploads")
   end
   io.write(string.format("LOAD requests=%d errors=%d socket_errors=%d uploads=%d duration_us=%d\n", summary.requests, errs,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
      ups, summary.duration))
end
