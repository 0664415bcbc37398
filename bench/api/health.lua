-- GET /api/v1/health
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local report = require("report")
wrk.method = "GET"
wrk.path = "/api/v1/health"
done = report.done("health")
