-- wrk script: every request carries the next unused DPoP proof from the
-- file LOAD_PROOFS (one per line; a proof is good for one request only),
-- the threads taking turns; LOAD_METHOD, LOAD_BODY and LOAD_AUTH as in
-- post.lua/get.lua. Running out of proofs ends the thread's requests with
-- a replayed one, which the server refuses (a non-2xx the script reports).
local proofs = {}
for line in io.lines(os.getenv("LOAD_PROOFS")) do
  proofs[#proofs + 1] = line
end
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  step = tonumber(os.getenv("LOAD_THREADS") or "2")
  idx = id + 1
  wrk.method = os.getenv("LOAD_METHOD") or "GET"
  local body = os.getenv("LOAD_BODY")
  if body and body ~= "" then
    wrk.body = body
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  local auth = os.getenv("LOAD_AUTH")
  if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
  end
end
function request()
  local p = proofs[idx] or proofs[#proofs]
  idx = idx + step
  wrk.headers["DPoP"] = p
  return wrk.format()
end
