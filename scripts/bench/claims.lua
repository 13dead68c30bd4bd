-- wrk script for scripts/bench-http.sh: POST {"tier":0} to /v1/campaigns/{id}/claims,
-- each request with the next resident token from a token file, so that no resident
-- claims twice (a second claim would be a 409 `limit_reached`, not a claim).
--
--   wrk -tT ... -s claims.lua URL -- TOKENS START BLOCK WRAP CAMPAIGN RATE T
--
--   TOKENS    file of resident tokens, one per line, all lines the same length
--             (the bench mints fixed-width account ids so tokens come out equal-sized;
--             it lets a thread seek straight to its slice instead of reading the file)
--   START     first line (0-based) this run may use
--   BLOCK     lines a thread takes at a time
--   WRAP      1: at the end of the file start over from line 0 (fine for the empty
--             handler, which ignores the token); 0: never reuse a token - once the file
--             is exhausted the run is flagged `exhausted` and must be discarded
--   CAMPAIGN  campaign id
--   RATE      0: as fast as possible (closed loop, one request in flight per
--             connection); >0: pace the whole run to about RATE requests/s (see delay())
--   T         wrk's thread count (-t), which a thread cannot ask wrk for
--
-- Slices are disjoint: thread k of T takes blocks k, k+T, k+2T, ... counted from START,
-- and its connections draw from its blocks one token at a time. done() reports the first
-- line no thread reached (`next_start`), so the next run starts there and the token file
-- is consumed only as fast as requests are actually sent.
--
-- Results go, one JSON object per run, to the file named by $BENCH_OUT (appended).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

-- setup() runs in wrk's main Lua state once per thread, before that thread's init().
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local file, width, lines_total, start, block, wrap, nthreads, path
local reqs, next_req = {}, 1
local blocks_taken = 0
local interval_ms, next_slot = 0, nil

-- Counters read by done() through thread:get(); globals so get() can see them.
built = 0        -- requests built by request()
answered = 0     -- responses received
created = 0      -- 201 Created
other = 0        -- any other status (a valid claims run has none)
exhausted = 0    -- 1 if this thread ran past the end of the file with WRAP=0
first_bad = ""   -- first non-201 status and body, for the report
max_line = -1    -- highest token line this thread took (-1: none)

local body = '{"tier":0}'

-- Loads this thread's next block of tokens and builds the requests for it.
local function load_block()
  local b = id + blocks_taken * nthreads
  blocks_taken = blocks_taken + 1
  local first = start + b * block
  local count = block
  if first >= lines_total then
    if wrap == 1 then
      first = (first - start) % lines_total
    else
      -- Out of tokens: keep the run going on reused tokens (they will come back 409)
      -- and say so; the bench script discards the run and asks for more residents.
      exhausted = 1
      first = first % lines_total
    end
  end
  if first + count > lines_total then
    count = lines_total - first
  end
  file:seek("set", first * width)
  local data = file:read(count * width)
  reqs, next_req = {}, 1
  for token in data:gmatch("[^\n]+") do
    if #token ~= width - 1 then
      error("token file lines differ in length; the bench needs fixed-width tokens")
    end
    reqs[#reqs + 1] = wrk.format("POST", path, {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, body)
  end
  if first + count - 1 > max_line then
    max_line = first + count - 1
  end
end

function init(args)
  local tokens = args[1]
  start = tonumber(args[2])
  block = tonumber(args[3])
  wrap = tonumber(args[4])
  local rate = tonumber(args[6])
  nthreads = tonumber(args[7])
  if not (tokens and start and block and wrap and args[5] and rate and nthreads) then
    error("usage: wrk -tT ... -s claims.lua URL -- TOKENS START BLOCK WRAP CAMPAIGN RATE T")
  end
  path = "/v1/campaigns/" .. args[5] .. "/claims"
  file = assert(io.open(tokens, "rb"))
  width = #assert(file:read("*l"), "empty token file") + 1
  lines_total = math.floor(file:seek("end") / width)
  if rate > 0 then
    -- This thread's share of the rate, as the gap between its consecutive requests.
    interval_ms = 1000 * nthreads / rate
  end
  load_block()
end

-- Pacing (only when RATE > 0). wrk calls delay() before every request on a connection
-- and only sends after the previous response arrived: pacing is closed loop. Each
-- thread keeps a schedule of send slots `interval_ms` apart and gives each request the
-- next slot; a slot already in the past is dropped, not made up later, so when the
-- server stalls fewer requests are sent and the stall is not charged to the requests
-- that would have been waiting. The latencies are therefore NOT corrected for
-- coordinated omission (wrk2 -R would be); at half of peak that matters little, but
-- read the p99 as "service time under that load", not as what a user would see.
function delay()
  if interval_ms == 0 then
    return 0
  end
  local now = now_ms()
  if next_slot == nil or next_slot < now then
    next_slot = now
  end
  local wait = next_slot - now
  next_slot = next_slot + interval_ms
  return math.floor(wait + 0.5)
end

function request()
  if next_req > #reqs then
    load_block()
  end
  local r = reqs[next_req]
  next_req = next_req + 1
  built = built + 1
  return r
end

function response(status, headers, resp_body)
  answered = answered + 1
  if status == 201 then
    created = created + 1
  else
    other = other + 1
    if first_bad == "" then
      first_bad = tostring(status) .. " " .. string.sub(resp_body or "", 1, 200)
    end
  end
end

local function json_string(s)
  s = string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. s .. '"'
end

function done(summary, latency, requests)
  local t_built, t_answered, t_created, t_other, t_exhausted = 0, 0, 0, 0, 0
  local bad, next_start = "", nil
  for i, thread in ipairs(threads) do
    local b = thread:get("built")
    -- wrk builds one request on the first thread before starting, only to check how
    -- many requests a request() string holds; that one is never sent.
    if i == 1 and b > 0 then
      b = b - 1
    end
    t_built = t_built + b
    t_answered = t_answered + thread:get("answered")
    t_created = t_created + thread:get("created")
    t_other = t_other + thread:get("other")
    t_exhausted = math.max(t_exhausted, thread:get("exhausted"))
    if bad == "" then
      bad = thread:get("first_bad")
    end
    local m = thread:get("max_line") + 1
    if next_start == nil or m > next_start then
      next_start = m
    end
  end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"created":%d,"other_status":%d,"built":%d,"answered":%d,"unanswered":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"exhausted":%s,"next_start":%d,"first_bad":%s}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    t_created, t_other, t_built, t_answered, t_built - t_answered,
    e.connect, e.read, e.write, e.status, e.timeout,
    t_exhausted == 1 and "true" or "false", next_start or 0, json_string(bad))
  local path_out = os.getenv("BENCH_OUT")
  if path_out then
    local f = assert(io.open(path_out, "a"))
    f:write(out)
    f:close()
  end
  io.write(out)
end
