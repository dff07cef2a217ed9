-- ms.plot — figures through gnuplot (Debian gnuplot-nox): PNG (pngcairo, else gd's png)
-- or SVG, chosen by the extension of `out`.
--
--   ms.plot.available()          -> true when gnuplot is on PATH
--   ms.plot.lines{...}           -> out   line plots with translucent bands (plot/lines.lua)
--   ms.plot.contour{...}         -> out   a filled map with contour lines, optimizer paths
--                                         and the minimum marked (plot/contour.lua)
-- Each plot leaves <out-without-extension>.dat and .gp beside the image: edit the .gp and
-- rerun it with `cd DIR && gnuplot NAME.gp`. When gnuplot is missing a plot returns nil
-- and a message 'gnuplot not found ...' (the .dat and .gp are still written) instead of
-- raising, so a long script still finishes; bad arguments are errors naming the function,
-- the field, what was given and what was expected.
local gp = require 'moonstep.plot.gnuplot'
local check = require 'moonstep.check'

local M = {}

function M.available() return gp.available() end
M.lines = require 'moonstep.plot.lines'
M.contour = require 'moonstep.plot.contour'

return check.strict(M, 'ms.plot')
