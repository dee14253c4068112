--- Tables of the GPT benchmark (bench/gpt_bench.lua): the ours-vs-PyTorch
-- lines, the sgemm comparison (raw OpenBLAS, raw cpu_sgemm, tc.matmul) and
-- model FLOP utilisation, as markdown.
local M = {}

local function fmt(value, pattern)
  if value == nil then return "-" end
  return (pattern or "%.1f"):format(value)
end

local function ratio(a, b)
  if a == nil or b == nil or b == 0 then return nil end
  return a / b
end

--- Rate in tokens/s of a line's result (training or generation), or nil.
function M.rate(result)
  if not result then return nil end
  return result.tokens_per_s or result.tok_per_s_median
end

--- Model FLOPs of one training step (PaLM appendix B / nanoGPT's estimate_mfu):
-- 6 N per token for the matmuls of forward and backward, N = parameters less
-- the position embedding (a lookup; the tied token embedding counts once, as
-- the head's matmul), plus 12 L T C per token for attention's QK^T and AV
-- (forward and backward, the causal mask not discounted); B T tokens a step.
function M.step_flops(cfg, params)
  local tokens = cfg.batch * cfg.ctx
  local n = params - cfg.ctx * cfg.n_embd
  return 6 * n * tokens + 12 * cfg.n_layer * cfg.ctx * cfg.n_embd * tokens
end

M.flops_formula = "FLOPs/step = 6 (P - T C) B T + 12 L T C B T  (P parameters, T C the position embedding, "
  .. "L layers, T context, C width, B batch; PaLM/nanoGPT convention)"

--- The ours-vs-PyTorch table of `lines` ({name, ours, torch} each).
function M.lines_table(lines)
  local out = {
    "| line | ours tok/s | PyTorch tok/s | ours/PyTorch | our peak RSS MiB | PyTorch peak RSS MiB |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, line in ipairs(lines) do
    local ours, torch = M.rate(line.ours), M.rate(line.torch)
    out[#out + 1] = ("| %s | %s | %s | %s | %s | %s |"):format(line.name, fmt(ours), fmt(torch),
      fmt(ratio(ours, torch), "%.2f"), fmt(line.ours and line.ours.peak_rss_mib_self),
      fmt(line.torch and line.torch.peak_rss_mib_self))
  end
  return table.concat(out, "\n")
end

-- The raw implementations of the sgemm tables, in column order, as named in
-- gpt_bench.lua's results.
local raw_keys = { "openblas_env", "openblas_auto", "cpu_sgemm" }
local implementation_names = { openblas_env = "OpenBLAS env", openblas_auto = "OpenBLAS auto",
  cpu_sgemm = "cpu_sgemm raw" }

--- Where an sgemm ceiling ({gflops, implementation, shape, use}) came from,
-- e.g. "cpu_sgemm raw, fc proj dx (2048,1536,384,n,n,1)"; `pinned` as in
-- sgemm_tables' labels (without it there is one OpenBLAS column).
function M.ceiling_source(ceiling, pinned)
  local name = implementation_names[ceiling.implementation] or ceiling.implementation
  if ceiling.implementation == "openblas_env" and not pinned then name = "OpenBLAS" end
  return ("%s, %s (%s)"):format(name, ceiling.use, ceiling.shape)
end

--- A ceiling as "210.3 GFLOP/s (source)", or "-".
function M.ceiling_text(ceiling, pinned)
  if not ceiling then return "-" end
  return ("%.1f GFLOP/s (%s)"):format(ceiling.gflops, M.ceiling_source(ceiling, pinned))
end

--- The sgemm tables, one per thread count: a row per shape with raw OpenBLAS
-- under the environment's settings (`env`), raw OpenBLAS auto-detected
-- (`auto`, only when labels.pinned: otherwise the two are the same run),
-- the engine's raw cpu_sgemm, tc.matmul, and tc.matmul over the best raw
-- rate of the row; then the ceiling. labels: {pinned, env_core, auto_core}.
function M.sgemm_tables(shapes, sgemm, thread_counts, labels)
  local columns = { { key = "openblas_env", title = labels.pinned and ("OpenBLAS env (%s)"):format(
    labels.env_core or "?") or ("OpenBLAS (%s)"):format(labels.env_core or "?") } }
  if labels.pinned then
    columns[#columns + 1] = { key = "openblas_auto", title = ("OpenBLAS auto (%s)"):format(labels.auto_core or "?") }
  end
  columns[#columns + 1] = { key = "cpu_sgemm", title = "cpu_sgemm raw" }
  columns[#columns + 1] = { key = "tc_matmul", title = "tc.matmul" }
  local header, rule = { "| GEMM (M×K·K×N, transposes, batch) | use |" }, { "| --- | --- |" }
  for _, c in ipairs(columns) do
    header[#header + 1] = (" %s |"):format(c.title)
    rule[#rule + 1] = " ---: |"
  end
  header[#header + 1] = " tc / best raw |"
  rule[#rule + 1] = " ---: |"
  local out = {}
  for _, t in ipairs(thread_counts) do
    local rates = sgemm[t] or {}
    out[#out + 1] = ("### %d thread%s\n"):format(t, t == 1 and "" or "s")
    out[#out + 1] = table.concat(header)
    out[#out + 1] = table.concat(rule)
    for _, shape in ipairs(shapes) do
      local row = { ("| %s×%s·%s×%s %s%s ×%s | %s |"):format(shape.m, shape.k, shape.k, shape.n, shape.ta,
        shape.tb, shape.batch, shape.use) }
      for _, c in ipairs(columns) do
        if c.key == "cpu_sgemm" and not rates.cpu_sgemm then
          row[#row + 1] = " absent |"
        else
          row[#row + 1] = (" %s |"):format(fmt(rates[c.key] and rates[c.key][shape.spec]))
        end
      end
      local best_raw
      for _, key in ipairs(raw_keys) do
        local g = rates[key] and rates[key][shape.spec]
        if g and (not best_raw or g > best_raw) then best_raw = g end
      end
      row[#row + 1] = (" %s |"):format(fmt(ratio(rates.tc_matmul and rates.tc_matmul[shape.spec], best_raw), "%.2f"))
      out[#out + 1] = table.concat(row)
    end
    out[#out + 1] = ("\nCeiling at %d thread%s: %s sustained (the best median of a shape's runs); the single "
      .. "fastest run: %s.\n"):format(t, t == 1 and "" or "s", M.ceiling_text(rates.ceiling, labels.pinned),
      M.ceiling_text(rates.burst_ceiling, labels.pinned))
  end
  return table.concat(out, "\n")
end

--- The MFU table: per training line, model GFLOP/s and the share of the
-- sgemm ceiling at the same thread count, ours and PyTorch.
function M.mfu_table(rows)
  local out = {
    "| line | GFLOP/step | sgemm ceiling GFLOP/s | ceiling from | ours GFLOP/s | ours MFU | PyTorch GFLOP/s "
      .. "| PyTorch MFU | best single run GFLOP/s | ours MFU vs best run |",
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  }
  for _, r in ipairs(rows) do
    local function pct(x) return x and ("%.1f%%"):format(100 * x) or "-" end
    out[#out + 1] = ("| %s | %.2f | %s | %s | %s | %s | %s | %s | %s | %s |"):format(r.name, r.step_gflop,
      fmt(r.ceiling), r.ceiling_from or "-", fmt(r.ours_gflops), pct(r.ours_mfu), fmt(r.torch_gflops),
      pct(r.torch_mfu), fmt(r.burst_ceiling), pct(r.ours_mfu_burst))
  end
  return table.concat(out, "\n")
end

return M
