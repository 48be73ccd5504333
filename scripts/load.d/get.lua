-- wrk script: GET with the Authorization header given in the environment.
local auth = os.getenv("LOAD_AUTH")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
