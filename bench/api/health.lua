-- GET /api/v1/health, with the credential of BENCH_AUTH (auth.lua).
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local report = require("report")
local auth = require("auth")
local counter = 0

request = function()
  counter = counter + 1
  local h = auth.headers(counter)
  return wrk.format("GET", "/api/v1/health", h)
end

done = report.done("health" .. auth.suffix())
