-- GET /v2/images/{id} for ids drawn at random from BENCH_IDS (one id a line).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local reqs, n
function init(args)
   math.randomseed(os.time() * 100 + tid)
   reqs = {}
   for _, id in ipairs(read_lines("BENCH_IDS")) do
      reqs[#reqs + 1] = wrk.format("GET", "/v2/images/" .. id)
   end
   n = #reqs
end

function request()
   return reqs[math.random(n)]
end
