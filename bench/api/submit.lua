-- POST /api/v1/submit: each request is one committed transaction (job row + hold + ledger row).
-- Buyers rotate over 64 ids so that PostgreSQL row locks on one user do not serialise everything.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local report = require("report")
local token = os.getenv("BENCH_ADMIN_TOKEN") or "bench-token"
local counter = 0
local thread_id = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

request = function()
  counter = counter + 1
  local buyer = string.format("bench-buyer-%d", (counter * 7 + thread_id) % 64)
  local body = string.format(
    '{"title":"bench %d","description":"load","code":"print(1)","required_cores":1,' ..
    '"required_ram_mb":128,"priority":%d,"command":"python main.py",' ..
    '"parameters":{"n":%d},"buyer_id":"%s"}', counter, counter % 10 + 1, counter, buyer)
  return wrk.format("POST", "/api/v1/submit", {
    ["Content-Type"] = "application/json",
    ["X-Admin-Token"] = token,
  }, body)
end

done = report.done("submit")
