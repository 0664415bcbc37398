-- Shared by the scripts: the credential a run sends, from BENCH_AUTH.
--   ""/unset: none (anonymous); "admin": X-Admin-Token = BENCH_ADMIN_TOKEN;
--   "key": Authorization: Bearer <one of BENCH_KEYS> (comma-separated "user=token" pairs, set by
--   run.sh: one key per bench buyer, so that submits with a key act for that key's user).
local M = {}

M.mode = os.getenv("BENCH_AUTH") or ""
M.admin_token = os.getenv("BENCH_ADMIN_TOKEN") or "bench-token"
M.keys = {}
for user, token in string.gmatch(os.getenv("BENCH_KEYS") or "", "([^=,]+)=([^,]+)") do
  M.keys[#M.keys + 1] = {user = user, token = token}
end

-- The suffix of the report name: "health" vs "health+admin" vs "health+key".
function M.suffix()
  if M.mode == "" then return "" end
  return "+" .. M.mode
end

-- Headers for request @n (a key is chosen by @n: one per buyer) and the buyer it acts for.
function M.headers(n, base)
  local h = {}
  for k, v in pairs(base or {}) do h[k] = v end
  local buyer = string.format("bench-buyer-%d", n % 64)
  if M.mode == "admin" then
    h["X-Admin-Token"] = M.admin_token
  elseif M.mode == "key" then
    local k = M.keys[(n % #M.keys) + 1]
    h["Authorization"] = "Bearer " .. k.token
    buyer = k.user
  end
  return h, buyer
end

return M
