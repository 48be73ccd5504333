-- wrk script: POST a fixed form body with the headers given in the environment.
wrk.method = "POST"
wrk.body = os.getenv("LOAD_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("LOAD_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
