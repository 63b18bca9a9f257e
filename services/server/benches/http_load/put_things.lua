-- PUT <path_prefix>/things/urn:dev:load-<tag>-<thread>-<n>: a new Thing per request.
-- args: <run_tag> <path_prefix, may be "">
dofile(os.getenv("HTTP_LOAD_LUA_DIR") .. "/common.lua")
local tag, prefix, n, hdrs
local tpl = '{"@context":"https://www.w3.org/2022/wot/td/v1.1","id":"%s","title":"Load %s",'
  .. '"securityDefinitions":{"nosec_sc":{"scheme":"nosec"}},"security":"nosec_sc",'
  .. '"properties":{"temp":{"type":"number","forms":[{"href":"http://example.com/%s/temp"}]}}}'
function init(args)
  tag, prefix, n = args[1] or tostring(os.time()), args[2] or "", 0
  hdrs = mkheaders({ ["Content-Type"] = "application/td+json" })
end
function request()
  n = n + 1
  local id = string.format("urn:dev:load-%s-%d-%d", tag, tid or 0, n)
  local body = string.format(tpl, id, id, urlencode(id))
  return wrk.format("PUT", prefix .. "/things/" .. urlencode(id), hdrs, body)
end
