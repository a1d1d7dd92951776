-- Valid routes in turn, each request tagged with an id (for log counting).
local paths = {"/customers", "/customers/111", "/customers/111/accounts",
               "/customers/111/accounts/1", "/customers/222/accounts/4", "/healthz"}
-- NFR_LOGGED_ONLY=1: leave out /healthz, which nginx does not log by design
if os.getenv("NFR_LOGGED_ONLY") == "1" then table.remove(paths) end
local n = 0
local tag = os.getenv("NFR_TAG") or "nfr"
request = function()
  n = n + 1
  local path = paths[(n % #paths) + 1]
  return wrk.format("GET", path, {["X-Request-ID"] = string.format("%s-%09d-%d", tag, n, math.random(1e9))})
end
done = function(summary, latency, requests)
  io.write(string.format("NFRJSON {\"requests\": %d, \"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"rps\": %.1f, \"duration_s\": %.1f}\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests / (summary.duration / 1e6), summary.duration / 1e6))
end
