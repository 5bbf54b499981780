-- bench/wrk.py's script for wrk: replays pre-signed Twilio webhooks, one file per wrk thread.
-- Each thread has one connection (wrk -t N -c N), so a child's texts go one at a time, each
-- after the reply to the one before, as a phone's would.
--   wrk ... -s bench/wrk_replay.lua URL -- DIR [PAUSE_MIN_MS PAUSE_MAX_MS]
-- DIR/<thread>.req: one request a line, "<X-Twilio-Signature>\t<form body>".

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local dir = args[1]
  local pause_min, pause_max = tonumber(args[2] or "0"), tonumber(args[3] or "0")
  reqs = {}
  local f = assert(io.open(dir .. "/" .. id .. ".req", "r"))
  for line in f:lines() do
    local sig, body = line:match("^([^\t]*)\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = sig}, body)
  end
  f:close()
  i, bad, wrapped = 0, 0, 0
  if pause_max > 0 then
    math.randomseed(id + 1)
    function delay() return math.random(pause_min, pause_max) end
  end
end

function request()
  i = i + 1
  if i > #reqs then i, wrapped = 1, wrapped + 1 end
  return reqs[i]
end

function response(status, headers, body)
  if status ~= 200 or not body:find("<Message>", 1, true) then bad = bad + 1 end
end

function done(summary, latency, requests)
  local bad_total, wrapped_total = 0, 0
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    wrapped_total = wrapped_total + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "bad_replies": %d, "ran_out": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, bad_total, wrapped_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
