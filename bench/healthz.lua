-- Reference: GET /healthz (framework + loopback ceiling: no auth, no catalog).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local req
function init(args)
   req = wrk.format("GET", "/healthz")
end

function request()
   return req
end
