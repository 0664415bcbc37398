-- Shared wrk report: one line "<name>: <req/s> req/s p50 <ms> ms p99 <ms> ms (<n> requests, <e> errors, non-2xx <k>)"
local M = {}

function M.done(name)
  return function(summary, latency, requests)
    local secs = summary.duration / 1e6
    local errs = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.timeout
    io.write(string.format(
      "RESULT %s: %.0f req/s p50 %.2f ms p99 %.2f ms (%d requests, %d socket errors, %d non-2xx)\n",
      name, summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      summary.requests, errs, summary.errors.status))
  end
end

return M
