-- POST /api/v1/submit: each request is one committed transaction (job row + hold + ledger row).
-- Buyers rotate over 64 ids so that PostgreSQL row locks on one user do not serialise everything.
-- BENCH_AUTH (auth.lua): "admin" (the default here) submits for the buyer with the admin token,
-- "key" with that buyer's own key; the bodies are the same.
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local report = require("report")
local auth = require("auth")
if auth.mode == "" then auth.mode = "admin" end
local counter = 0
local thread_id = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

request = function()
  counter = counter + 1
  local h, buyer = auth.headers(counter * 7 + thread_id, {["Content-Type"] = "application/json"})
  local body = string.format(
    '{"title":"bench %d","description":"load","code":"print(1)","required_cores":1,' ..
    '"required_ram_mb":128,"priority":%d,"command":"python main.py",' ..
    '"parameters":{"n":%d},"buyer_id":"%s"}', counter, counter % 10 + 1, counter, buyer)
  return wrk.format("POST", "/api/v1/submit", h, body)
end

done = report.done("submit" .. auth.suffix())
