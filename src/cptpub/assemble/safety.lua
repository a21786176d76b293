--[[
cptpub safety filter: runs on every document cptpub assembles, after the reader
(`markdown-raw_html-raw_tex-raw_attribute`) and before any writer.

The reader already turns HTML, TeX and raw blocks into plain text. This filter closes
the remaining ways Markdown text can become markup or read files:
  * key=value attributes are dropped: the HTML writer copies them verbatim
    (`onclick`, `style`) and the Typst writer turns `typst:*` ones into code.
    Only an image's `fig-alt` is kept: it becomes the image's alt text, or stays as
    `fig-alt` under Quarto, which reads it itself;
  * links keep only http(s), mailto, fragment and relative targets;
  * image sources must be existing files under the build folder: no scheme, no
    absolute path, no `..`, so `--embed-resources` cannot read other files;
  * citations go back to their text (the Typst writer would emit `#cite`);
  * any raw element that still appears is removed.

Options, read from the real globals (`_G`): Quarto runs its user filters in a private
environment, so the quarto engine's loader sets `_G.CPTPUB_SAFETY_OPTIONS = { keep_fig_alt = true,
base = "/path/to/build/folder" }` before running this file with dofile.
]]

local options = CPTPUB_SAFETY_OPTIONS or {}
local keep_fig_alt = options.keep_fig_alt == true
local base = options.base or "."
local SAFE_LINK_SCHEMES = { http = true, https = true, mailto = true }

local function scheme(target)
  return target:match("^([%a][%w+.-]*):")
end

-- Returns nothing for an element without attributes: Pandoc then keeps it as it is, rather than reading it back.
local function drop_attributes(el)
  if #el.attributes > 0 then
    el.attributes = {}
    return el
  end
end

local function check_image_source(src)
  local problem
  if scheme(src) then
    problem = "it has a URL scheme"
  elseif src:match("^[/\\]") then
    problem = "it is an absolute path"
  elseif ("/" .. src .. "/"):match("[/\\]%.%.[/\\]") then
    problem = "it leaves the build folder"
  else
    local file = io.open(pandoc.path.join({ base, src }), "rb")
    if not file then
      problem = "no such file in the build folder"
    else
      file:close()
    end
  end
  if problem then
    error("cptpub: image source '" .. src .. "' refused: " .. problem ..
      " (figures must be files under the code's build folder, e.g. figures/x.svg)", 0)
  end
end

local filter = {
  Image = function(img)
    check_image_source(img.src)
    if #img.attributes == 0 then
      return nil
    end
    local alt = img.attributes["fig-alt"]
    img.attributes = {}
    if alt and keep_fig_alt then
      img.attributes["fig-alt"] = alt
    elseif alt then
      img.caption = { pandoc.Str(alt) }
    end
    return img
  end,
  Link = function(link)
    local s = scheme(link.target)
    if s and not SAFE_LINK_SCHEMES[s:lower()] then
      return link.content
    end
    return drop_attributes(link)
  end,
  Cite = function(cite) return cite.content end,
  RawInline = function() return {} end,
  RawBlock = function() return {} end,
  Span = drop_attributes,
  Div = drop_attributes,
  Header = drop_attributes,
  Code = drop_attributes,
  CodeBlock = drop_attributes,
  Table = drop_attributes,
  Figure = drop_attributes,
}

return { filter }
