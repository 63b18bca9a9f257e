-- POST <path_prefix>/search/sparql with the query as the raw body
-- (Content-Type application/sparql-query), the same request every time.
-- args: <query> <path_prefix, may be "">
dofile(os.getenv("HTTP_LOAD_LUA_DIR") .. "/common.lua")
local req
function init(args)
  local q, prefix = args[1], args[2] or ""
  assert(q and q ~= "", "missing SPARQL query")
  req = wrk.format("POST", prefix .. "/search/sparql", mkheaders({
    ["Content-Type"] = "application/sparql-query",
    Accept = "application/sparql-results+json",
  }), q)
end
function request() return req end
