-- wrk script for bar P6: each request is one machine's batch of BENCH_BATCH new reports
-- (ids unique per run, thread and request), spread over the benchmark's rollouts. The 200 answers
-- are counted so that the database can be checked against them afterwards.
local machines = tonumber(os.getenv("BENCH_MACHINES") or "100000")
local batch = tonumber(os.getenv("BENCH_BATCH") or "1")
local run = tonumber(os.getenv("BENCH_RUN") or "0")
local rolloutIds = {}
for id in string.gmatch(os.getenv("BENCH_ROLLOUT_IDS") or "", "[^,]+") do table.insert(rolloutIds, id) end
local threads = {}
local counter = 0
ok = 0
bad = 0
accepted = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local machine = (tid * 7919 + counter) % machines + 1
  local parts = {}
  for b = 1, batch do
    local n = (counter - 1) * batch + b
    local rollout = rolloutIds[(n % #rolloutIds) + 1]
    parts[b] = string.format(
      '{"id":"%04x%04x-0000-4000-8000-%012x","rolloutId":"%s","name":"CLP1251101","status":"%s","at":"2026-11-23T12:00:00Z"}',
      run, tid, n, rollout, (n % 50 == 0) and "failed" or "applied")
  end
  return wrk.format("POST", "/v1/agent/reports", {
    ["Authorization"] = "Bearer clp_mch_bench_" .. machine,
    ["Content-Type"] = "application/json",
  }, '{"reports":[' .. table.concat(parts, ",") .. ']}')
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
    accepted = accepted + batch
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local okTotal, badTotal, acc = 0, 0, 0
  for _, t in ipairs(threads) do
    okTotal = okTotal + (t:get("ok") or 0)
    badTotal = badTotal + (t:get("bad") or 0)
    acc = acc + (t:get("accepted") or 0)
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"ok":%d,"bad":%d,"acknowledgedReports":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latencyUs":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, okTotal, badTotal, acc,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
