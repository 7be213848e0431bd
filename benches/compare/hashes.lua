-- wrk script for hashsieved's POST /v1/match/hashes (benches/compare/daemon.sh):
--
--   wrk -t2 -c64 -d20s --latency -s hashes.lua http://ADDR -- LISTED_FILE [HASHES_PER_REQUEST]
--
-- Every request carries HASHES_PER_REQUEST (default 1) MD5s, of which one in ten is picked at
-- random from LISTED_FILE (MD5s in the index: known) and the others are random (unknown).
-- request() hands out a different request each time, from a pool of 100,000 MD5s' worth of
-- requests each thread builds beforehand: wrk shares the cores with the daemon, and building
-- random bodies while measuring would take the daemon's CPU time.

local thread_count = 0

-- Runs in wrk's main state once per thread: number the threads, so that each seeds its own
-- random sequence.
function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
end

local pool = {}
local next_request = 0

local function random_md5()
  -- Four hex digits at a time: math.random's range is safe up to 2^31 only.
  local r = math.random
  return string.format("%04x%04x%04x%04x%04x%04x%04x%04x",
    r(0, 65535), r(0, 65535), r(0, 65535), r(0, 65535), r(0, 65535), r(0, 65535), r(0, 65535), r(0, 65535))
end

function init(args)
  local listed = {}
  for line in io.lines(args[1]) do
    listed[#listed + 1] = line
  end
  assert(#listed > 0, "no listed MD5s in " .. args[1])
  local per_request = tonumber(args[2] or "1")
  math.randomseed(os.time() * 1000 + thread_number)
  local headers = { ["Content-Type"] = "application/json" }
  local counter = 0
  for i = 1, math.max(1, math.floor(100000 / per_request)) do
    local items = {}
    for j = 1, per_request do
      counter = counter + 1
      local value = counter % 10 == 0 and listed[math.random(1, #listed)] or random_md5()
      items[j] = '{"kind":"md5","value":"' .. value .. '"}'
    end
    pool[i] = wrk.format("POST", "/v1/match/hashes", headers, '{"hashes":[' .. table.concat(items, ",") .. ']}')
  end
end

request = function()
  next_request = next_request % #pool + 1
  return pool[next_request]
end
