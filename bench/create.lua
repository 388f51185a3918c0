-- POST /v2/images with a small JSON body, a distinct name per request.
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local counter, prefix
function init(args)
   counter = 0
   prefix = "bench-" .. (os.getenv("BENCH_TAG") or "x") .. "-" .. tid .. "-"
end

function request()
   counter = counter + 1
   return wrk.format(nil, "/v2/images", nil,
      '{"name":"' .. prefix .. counter ..
      '","disk_format":"qcow2","container_format":"bare","tags":["bench"],"os_distro":"debian"}')
end
