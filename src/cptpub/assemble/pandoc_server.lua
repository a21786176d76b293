--[[
cptpub's long-lived Pandoc (`pandoc lua pandoc_server.lua READER`): one per worker process, so Pandoc starts once
rather than twice per edition, and each edition's Markdown is read once for all its outputs.

Reads one job per line on stdin (JSON), answers one line on stdout (JSON): {"ok": true} or {"error": "..."}.
A job: {"dir": build folder, "markdown": file (as the command line reads its input: no carriage returns, tabs
        expanded), "filters": [Lua filter files],
        "outputs": [{"format": a writer ("typst", "html5", "json"), "filter_format": FORMAT for the filters,
                     "metadata": YAML metadata file or null, "template": template file or null,
                     "options": more WriterOptions (as pandoc.write takes them) or null, "file": output}]}
Each output gets what the command line `pandoc --from=READER --metadata-file=M --lua-filter=F... --to=T
--standalone --template=X` (with the options' command-line equivalents) gives it: the document's own metadata wins
over the file's, the filters see the merged metadata and run with their FORMAT global set to the output's, in the
build folder. Stops at the end of stdin (its worker is gone).
]]

local READER = arg[1]
local reader_options = pandoc.ReaderOptions { standalone = true }

local function read_text(path)
  local file = assert(io.open(path, "rb"))
  local text = file:read("a")
  file:close()
  return text
end

local function write_text(path, text)
  local partial = path .. ".partial"
  local file = assert(io.open(partial, "wb"))
  file:write(text)
  file:close()
  assert(os.rename(partial, path))
end

-- --metadata-file: read as a YAML metadata block with the input's reader; the document's own values win.
local function merge_metadata(doc, path)
  local from_file = pandoc.read("---\n" .. read_text(path) .. "\n...\n", READER, reader_options).meta
  for key, value in pairs(from_file) do
    if doc.meta[key] == nil then
      doc.meta[key] = value
    end
  end
  return doc
end

local function render(doc, output, filters)
  doc = doc:clone()
  if output.metadata ~= pandoc.json.null and output.metadata then
    doc = merge_metadata(doc, output.metadata)
  end
  FORMAT = output.filter_format
  for _, filter in ipairs(filters) do
    doc = pandoc.utils.run_lua_filter(doc, filter)
  end
  local options = {}
  if output.options ~= pandoc.json.null and output.options then
    for key, value in pairs(output.options) do
      options[key] = value
    end
  end
  if output.template ~= pandoc.json.null and output.template then
    options.template = pandoc.template.compile(read_text(output.template), output.template)
  end
  write_text(output.file, pandoc.write(doc, output.format, options))
end

local function convert(job)
  pandoc.system.with_working_directory(job.dir, function()
    local doc = pandoc.read(read_text(job.markdown), READER, reader_options)
    for _, output in ipairs(job.outputs) do
      render(doc, output, job.filters)
    end
  end)
end

for line in io.lines() do
  local ok, problem = pcall(function() convert(pandoc.json.decode(line, false)) end)
  io.stdout:write(pandoc.json.encode(ok and { ok = true } or { error = tostring(problem) }), "\n")
  io.stdout:flush()
end
