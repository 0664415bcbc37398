-- GET /api/v1/jobs?limit=50
package.path = package.path .. ";" .. os.getenv("BENCH_DIR") .. "/?.lua"
local report = require("report")
wrk.method = "GET"
wrk.path = "/api/v1/jobs?limit=50"
done = report.done("jobs?limit=50")
