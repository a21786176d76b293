--[[
cptpub's long-lived Pandoc (`pandoc lua pandoc_server.lua READER`): one per worker process, so Pandoc starts once
rather than twice per edition, and each edition's Markdown is read once for all its outputs.

Reads one job per line on stdin (JSON), answers one line on stdout (JSON): {"ok": true} or {"error": "..."}.
A job: {"dir": build folder, "markdown": file (as the command line reads its input: no carriage returns, tabs
        expanded), "metadata": YAML metadata file or null,
        "filters": [{"file": Lua filter, "globals": {name: value} set while it runs}],
        "outputs": [{"format": a writer ("typst", "html5", "json"), "filter_format": FORMAT for the filters,
                     "metadata": whether it gets the metadata file's values, "filters": [as above],
                     "template": template file or null,
                     "options": more WriterOptions (as pandoc.write takes them) or null, "file": output}]}
Each output gets what the command line `pandoc --from=READER [--metadata-file=M] --lua-filter=F... --to=T
--standalone --template=X` (with the options' command-line equivalents; F: the job's filters, then the output's)
gives it: the document's own metadata wins over the file's, the filters see the merged metadata and run with their
FORMAT global set to the output's, in the build folder.

The document is read, merged with the metadata file and run through the job's filters once, for all its outputs
(which is why those filters must not depend on FORMAT: they see the first output's); then each output takes a copy,
keeps the file's metadata or only the document's own, and runs its own filters. So the job's filters see the file's
metadata also for an output that does not keep it, which changes nothing when they treat each metadata value on its
own (cptpub's filters do). Stops at the end of stdin (its worker is gone).
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

-- Compiled templates by file, with the text they were compiled from: a template is compiled again only when its
-- text changed. One that may include partials (`$name()$`, `${name()}`, `$x:name()[, ]$`) is compiled for every output, as the
-- command line does, since a partial can change without the template changing.
local compiled_templates = {}

local function compiled_template(path)
  local text = read_text(path)
  local known = compiled_templates[path]
  if known and known.text == text then
    return known.template
  end
  local template = pandoc.template.compile(text, path)
  if not text:find("[%w_-]%(%)%s*[%$}%[]") then
    compiled_templates[path] = { text = text, template = template }
  end
  return template
end

local function given(value)
  return value ~= pandoc.json.null and value or nil
end

local function run_filters(doc, filters)
  for _, filter in ipairs(filters or {}) do
    local globals = given(filter.globals) or {}
    for name, value in pairs(globals) do
      _G[name] = value
    end
    local ok, result = pcall(pandoc.utils.run_lua_filter, doc, filter.file)
    for name in pairs(globals) do
      _G[name] = nil
    end
    if not ok then
      error(result, 0)
    end
    doc = result
  end
  return doc
end

-- The document's own metadata, without the values the metadata file added.
local function own_meta(meta, own)
  local kept = {}
  for key, value in pairs(meta) do
    if own[key] then
      kept[key] = value
    end
  end
  return kept
end

local function render(doc, own, output)
  doc = doc:clone()
  if own and output.metadata ~= true then
    doc.meta = own_meta(doc.meta, own)
  end
  FORMAT = output.filter_format
  doc = run_filters(doc, given(output.filters))
  local options = {}
  for key, value in pairs(given(output.options) or {}) do
    options[key] = value
  end
  local template = given(output.template)
  if template then
    options.template = compiled_template(template)
  end
  write_text(output.file, pandoc.write(doc, output.format, options))
end

local function convert(job)
  pandoc.system.with_working_directory(job.dir, function()
    local doc = pandoc.read(read_text(job.markdown), READER, reader_options)
    local own = nil -- the keys of the document's own metadata, when a metadata file adds others
    if given(job.metadata) then
      own = {}
      for key in pairs(doc.meta) do
        own[key] = true
      end
      doc = merge_metadata(doc, job.metadata)
    end
    if job.outputs[1] then
      FORMAT = job.outputs[1].filter_format
    end
    doc = run_filters(doc, given(job.filters))
    for _, output in ipairs(job.outputs) do
      render(doc, own, output)
    end
  end)
end

for line in io.lines() do
  local ok, problem = pcall(function() convert(pandoc.json.decode(line, false)) end)
  io.stdout:write(pandoc.json.encode(ok and { ok = true } or { error = tostring(problem) }), "\n")
  io.stdout:flush()
end
