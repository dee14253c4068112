-- A tiny HTTP/1.0 server for the download specs: serves one file at any
-- path on 127.0.0.1:PORT, then keeps serving until killed.
--   lua5.4 spec/helpers/http_server.lua PORT FILE [READY_FILE]
-- PORT 0 picks a free port. When READY_FILE is given, the port is written
-- to it once the socket listens.
local socket = require("socket")

local port, path, ready = tonumber(arg[1]), arg[2], arg[3]
assert(port and path, "usage: http_server.lua PORT FILE [READY_FILE]")

local server = assert(socket.bind("127.0.0.1", port))
if ready then
  local f = assert(io.open(ready, "w"))
  local _, bound = server:getsockname()
  f:write(tostring(bound), "\n")
  f:close()
end

while true do
  local client = server:accept()
  if client then
    client:settimeout(5)
    local request = client:receive("*l")
    while true do -- skip the headers
      local line = client:receive("*l")
      if not line or line == "" then
        break
      end
    end
    local file = io.open(path, "rb")
    if request and file then
      local body = file:read("a")
      file:close()
      client:send("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " .. #body
        .. "\r\nConnection: close\r\n\r\n" .. body)
    else
      client:send("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    end
    client:close()
  end
end
