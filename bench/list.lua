-- GET BENCH_LIST_PATH (e.g. /v2/images?status=active&sort=created_at:desc&limit=25).
-- With BENCH_IDS set (and not empty), every request adds &marker=<random id from the file> (keyset paging
-- from a random place in the catalog).
dofile(os.getenv("BENCH_DIR") .. "/common.lua")

local reqs, n
function init(args)
   math.randomseed(os.time() * 100 + tid)
   local path = os.getenv("BENCH_LIST_PATH")
   assert(path, "BENCH_LIST_PATH is not set")
   reqs = {}
   local ids = os.getenv("BENCH_IDS")
   if ids and ids ~= "" then
      for _, id in ipairs(read_lines("BENCH_IDS")) do
         reqs[#reqs + 1] = wrk.format("GET", path .. "&marker=" .. id)
      end
   else
      reqs[1] = wrk.format("GET", path)
   end
   n = #reqs
end

function request()
   return reqs[math.random(n)]
end
