-- lua54(source, ...): runs Lua 5.4 source (a `<close>` variable, say) with ... as its arguments, on Lua 5.4
-- only; other Luas cannot compile it, so there it returns false and the caller marks what it skipped.
return function(source, ...)
  if _VERSION ~= "Lua 5.4" then
    return false
  end
  assert(load(source, "=(Lua 5.4 only)"))(...)
  return true
end
