-- wrk script for bar P5: each request is one agent's poll, with the credential of the next
-- machine in turn (threads start at different machines), so that the server's short
-- credential cache rarely helps, as with a real fleet polling once a day.
local machines = tonumber(os.getenv("BENCH_MACHINES") or "100000")
-- Each machine sends the facts it was enrolled with (its own host name), as a real agent does
-- poll after poll: a poll that changed a machine's indexed facts would cost more than a daily one.
local function body(n)
  return '{"facts":{"hostname":"bench-' .. n .. '","os":{"id":"vincent","version":"2025.11"},"arch":"x86_64","agentVersion":"0.1.0"},"installed":[]}'
end
local threads = {}
local counter = 0
ok = 0
bad = 0

function setup(thread)
  thread:set("start", #threads * 7919)
  table.insert(threads, thread)
end

function init(args)
  counter = start or 0
end

function request()
  counter = counter % machines + 1
  return wrk.format("POST", "/v1/agent/poll", {
    ["Authorization"] = "Bearer clp_mch_bench_" .. counter,
    ["Content-Type"] = "application/json",
  }, body(counter))
end

function response(status, headers, rbody)
  if status == 200 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local okTotal, badTotal = 0, 0
  for _, t in ipairs(threads) do
    okTotal = okTotal + (t:get("ok") or 0)
    badTotal = badTotal + (t:get("bad") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"ok":%d,"bad":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, okTotal, badTotal,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
