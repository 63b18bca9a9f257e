-- Shared helpers for the http_load.sh wrk scripts (loaded with dofile; wrk runs one Lua
-- state per thread, so everything here is per thread).

-- Percent-encodes everything outside `keep` (default: RFC 3986 unreserved), so ':' in a
-- URN travels as %3A.
function urlencode(s, keep)
  keep = keep or "A-Za-z0-9%-%._~"
  return (s:gsub("[^" .. keep .. "]", function(c)
    return string.format("%%%02X", string.byte(c))
  end))
end

-- wrk.headers (Host and every -H given to wrk) plus `extra`.
function mkheaders(extra)
  local h = {}
  for k, v in pairs(wrk.headers) do h[k] = v end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- Numbers the threads: each thread's global `tid` is 1, 2, ...
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
