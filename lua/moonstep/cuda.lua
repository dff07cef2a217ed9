-- moonstep.cuda — is there a GPU, how many, wait for it.
local core = require 'moonstep.core'
local C, fail = core.C, core.fail

local M = {}

-- true when this library was built with CUDA and a GPU is usable now.
function M.is_available() return C.ms_cuda_device_count() > 0 end
function M.device_count() return C.ms_cuda_device_count() end
function M.compiled() return C.ms_cuda_compiled() == 1 end
function M.synchronize()
  if C.ms_cuda_synchronize() ~= 0 then fail(2) end
end

return require('moonstep.check').strict(M, 'ms.cuda')
