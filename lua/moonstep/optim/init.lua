-- moonstep.optim — optimizers over a model's parameter arena (one file each).
--   local opt = optim.Adam(model, {lr = 1e-3})
--   opt:step(function() ... return loss end)
local adam = require 'moonstep.optim.Adam'
return require('moonstep.check').strict(require('moonstep.optim.chain').register {   -- + chain, transforms
  Optimizer = require 'moonstep.optim.Optimizer',
  SGD = require 'moonstep.optim.SGD',
  Adam = adam.Adam,
  AdamW = adam.AdamW,
  NAdam = require 'moonstep.optim.NAdam',
  RMSprop = require 'moonstep.optim.RMSprop',
  Adagrad = require 'moonstep.optim.Adagrad',
  AutoSGM = require 'moonstep.optim.AutoSGM',
  SAM = require 'moonstep.optim.SAM',
  GSAM = require 'moonstep.optim.GSAM',
  WSAM = require 'moonstep.optim.WSAM',
  LookSAM = require 'moonstep.optim.LookSAM',
  FriendlySAM = require 'moonstep.optim.FriendlySAM',
  LBFGS = require 'moonstep.optim.LBFGS',
  BSAM = require 'moonstep.optim.BSAM',
  ACME = require 'moonstep.optim.ACME',
  SPSA = require 'moonstep.optim.SPSA',
}, 'ms.optim')
