--[[
cptpub cross-reference filter (builtin engine): runs before safety.lua.

Quarto's cross-references for cell outputs: a figure or table labelled `fig-...` / `tbl-...` (cell options
`#| label:` with `#| fig-cap:` / `#| tbl-cap:`) is referenced in Markdown as `@fig-...` / `@tbl-...`, which
becomes a link "Figure N" / "Table N". Captioned figures and tables are numbered in document order, each kind
on its own, as the Typst template numbers them; HTML captions get the "Figure N: " / "Table N: " prefix that
Typst prints itself. A reference to a label that does not exist reads "?@label", as under Quarto.

The long-lived Pandoc (pandoc_server.lua) runs this file in two parts, so that its work for both formats is done
once: with the global CPTPUB_CROSSREF = "numbers", once per document, numbering and references without the HTML
caption prefixes; with "labels", per output, only the prefixes (the same numbering, in the same order). Unset (the
command line), it does both.
]]

local mode = CPTPUB_CROSSREF
local numbers = {}
local counts = { fig = 0, tbl = 0 }
local label_caption = FORMAT ~= "typst" and mode ~= "numbers"
local NAMES = { fig = "Figure", tbl = "Table" }
local referenced = false -- whether the document has a reference at all (most have none: no second walk then)

local function has_caption(caption)
  return caption and caption.long and #caption.long > 0
end

local function number(kind, el)
  counts[kind] = counts[kind] + 1
  local n = counts[kind]
  if el.identifier ~= "" then
    numbers[el.identifier] = NAMES[kind] .. " " .. n
  end
  if label_caption then
    local first = el.caption.long[1]
    if first and first.content then
      first.content:insert(1, pandoc.Str(NAMES[kind] .. " " .. n .. ":"))
      first.content:insert(2, pandoc.Space())
      return el
    end
  end
  -- Unchanged: returning nothing keeps the element as it is, rather than having Pandoc read it back.
end

-- The reference a citation is, or nil.
local function reference(cite)
  local id = cite.citations[1].id
  if #cite.citations ~= 1 or not (id:match("^fig%-") or id:match("^tbl%-")) then
    return nil
  end
  return id
end

local numbering = {
  traverse = "topdown",
  Cite = function(cite)
    referenced = referenced or reference(cite) ~= nil
  end,
  Figure = function(fig)
    if has_caption(fig.caption) then
      return number("fig", fig)
    end
  end,
  Table = function(tbl)
    if has_caption(tbl.caption) then
      return number("tbl", tbl)
    end
  end,
}

local links = {
  Cite = function(cite)
    local id = reference(cite)
    if not id then
      return nil
    end
    local name = numbers[id]
    if not name then
      return pandoc.Str("?@" .. id)
    end
    return pandoc.Link(name, "#" .. id)
  end,
}

local references = {
  Pandoc = function(doc)
    if referenced then
      return doc:walk(links)
    end
  end,
}

if mode == "labels" then
  return label_caption and { numbering } or {}
end
return { numbering, references }
