-- LÖVE 11.x settings for the tricycle demo (see main.lua).
function love.conf(t)
  t.identity = "tricycle-demo"
  t.version = "11.4"
  t.window.title = "tricycle: a GPT writes, a policy learns"
  t.window.width = 960
  t.window.height = 600
  t.window.vsync = 0 -- main.lua paces frames itself at 60 per second
  t.modules.joystick = false
  t.modules.physics = false
  t.modules.audio = false
  t.modules.sound = false
end
