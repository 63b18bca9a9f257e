-- GET <path_prefix><percent-encoded id>, the id drawn at random from a file (one per line).
-- args: <ids_file> <path_prefix, e.g. /things/> <accept>
dofile(os.getenv("HTTP_LOAD_LUA_DIR") .. "/common.lua")
local paths, hdrs
function init(args)
  local file, prefix, accept = args[1], args[2] or "/things/", args[3] or "application/json"
  paths = {}
  for line in io.lines(file) do
    line = line:gsub("%s+$", "")
    if line ~= "" then table.insert(paths, prefix .. urlencode(line)) end
  end
  assert(#paths > 0, "no ids in " .. file)
  math.randomseed(os.time() * 31 + (tid or 0) * 7919)
  hdrs = mkheaders({ Accept = accept })
end
function request()
  return wrk.format("GET", paths[math.random(#paths)], hdrs)
end
