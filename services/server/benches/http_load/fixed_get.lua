-- GET one fixed path (e.g. /healthz: the HTTP stack's ceiling), the same request every
-- time, built once like sparql.lua's so the client-side cost is comparable.
-- args: <path>
dofile(os.getenv("HTTP_LOAD_LUA_DIR") .. "/common.lua")
local req
function init(args)
  req = wrk.format("GET", args[1] or "/healthz", mkheaders({}))
end
function request() return req end
