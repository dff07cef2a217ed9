-- moonstep.cuda — is there a GPU, how many, wait for it.
local core = require 'moonstep.core'
local C, fail = core.C, core.fail

local ffi = require 'ffi'

local M = {}

-- A CUDA build keeps its GPU code in a plugin (libmoonstep_cuda.so beside libmoonstep.so)
-- that the C runtime loads on first GPU use (runtime/cuda_loader.c): is_available,
-- device_count and why load it where an NVIDIA driver is present; nothing else here does.

-- true when this library was built with CUDA and a GPU is usable now.
function M.is_available() return C.ms_cuda_device_count() > 0 end
function M.device_count() return C.ms_cuda_device_count() end
function M.compiled() return C.ms_cuda_compiled() == 1 end
-- nil when a GPU is usable; else why not, in words (built without CUDA, no NVIDIA driver,
-- the CUDA plugin missing or not loadable, no device).
function M.why()
  if M.is_available() then return nil end
  return ffi.string(C.ms_cuda_why())
end
function M.synchronize()
  if C.ms_cuda_synchronize() ~= 0 then fail(2) end
end

return require('moonstep.check').strict(M, 'ms.cuda')
