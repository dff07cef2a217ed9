-- WSAM under data parallelism with sync = 'final' (lua/moonstep/optim/WSAM.lua,
-- optim/sharpness.lua's _own_sync hook; spec sam_family.md §2.6, §5 steps 1-8): on 2 ranks
-- under mpirun, each with half the batch, the trajectory of the official dlrover order
-- (e from the LOCAL g1; g1 and g2 averaged over the ranks, THEN clipped by max_norm; the
-- update from those), against an independent reference written as explicit arithmetic
-- (tests/dist/wsam_traj.lua's M.reference: the model's forward/backward for gradients, Lua
-- numbers for the rest), decoupled and coupled, max_norm small enough to clip and off,
-- gradient accumulation; a NaN on one rank in either pass makes both ranks skip together
-- (no hang, opt.skipped the same). With one process: the values the code gave before the
-- hook (bit for bit on the machine that recorded them), and the reference of a world of one.
local H = require 'helper'
local D = require 'dist_helper'
local W = dofile('tests/dist/wsam_traj.lua')

local dit = H.gate(it, pending, D.available, D.why)
local STEPS = 4

local agree = D.agree

-- rank -> name -> {losses =, params =, skipped =}, out of the script's files.
local function two_ranks()
  local prefix = os.tmpname()
  local rc, log = D.run(2, 'tests/dist/wsam_traj.lua', STEPS .. ' ' .. prefix, { timeout = 120 })
  local res, text = { [0] = {}, [1] = {} }, ''
  for r = 0, 1 do
    local f = io.open(prefix .. '.' .. r)
    if f then
      local s = f:read('*a')
      f:close()
      text = text .. s
      for name, l, p, k in s:gmatch('([%w_]+) losses=([^ ]+) params=([^ ]+) skipped=(%d+)') do
        res[r][name] = { losses = W.parse(l), params = W.parse(p), skipped = tonumber(k) }
      end
    end
    os.remove(prefix .. '.' .. r)
  end
  os.remove(prefix)
  assert.are.equal(0, rc, log)   -- (124: the timeout killed a hang)
  return res, text
end

describe("WSAM sync = 'final' on 2 ranks (mpirun), half the batch each", function()
  local res, text
  local function runs()
    if not res then res, text = two_ranks() end
    return res
  end

  for _, name in ipairs { 'dec', 'cpl', 'dec_clip', 'cpl_clip', 'acc_clip', 'acc' } do
    local cfg = W.RUNS[name]
    dit(('%s (decouple = %s, max_norm = %s, accumulation %d): the official order, as the explicit reference (1e-12)')
        :format(name, tostring(cfg.decouple), tostring(cfg.max_norm or false), cfg.gradient_accumulation_steps or 1), function()
      local r = runs()
      local want, biggest = W.reference(name, 2, STEPS)
      if cfg.max_norm then   -- max_norm clipped every averaged g1 and g2 it saw
        assert.is_true(biggest > 10 * cfg.max_norm, ('norms up to %g'):format(biggest))
      end
      for rank = 0, 1 do
        local got = r[rank][name]
        assert.truthy(got, text)
        agree(got.params, want, 1e-12, ('%s rank %d parameters'):format(name, rank))
        assert.are.equal(0, got.skipped)
      end
      assert.are.same(r[0][name].params, r[1][name].params)   -- the ranks bit-identical
      -- the losses are each rank's own (pass 1 on its half)
      assert.are_not.equal(r[0][name].losses[1], r[1][name].losses[1])
    end)
  end

  dit('max_norm acts on the averages: not the order that clips each rank\'s g1 and g2 first', function()
    local r = runs()
    -- a world of one with two micro-batches (the two halves) is that local-clip order
    -- (each micro-batch's g1 and g2 clipped, then the directions averaged)
    local _, local_first = W.train('acc_clip', 0, 1, STEPS)
    local gap = 0
    for i, v in ipairs(local_first) do gap = math.max(gap, math.abs(r[0].dec_clip.params[i] - v)) end
    assert.is_true(gap > 1e-5, ('the two orders differ by only %g'):format(gap))
  end)

  for _, v in ipairs {
    { 'dec_clip_nan1', 'pass 1 (its data)', { [2] = true } },
    { 'dec_clip_nan2', 'pass 2 only', { [2] = true } },
    { 'cpl_nan1', 'pass 1, max_norm off (the driver\'s final average)', { [2] = true } },
    { 'acc_clip_nan2', 'pass 2 of micro-batch 1 (accumulation: that micro-batch is left out on both)', { [2] = 1 } },
  } do
    local name, where, skip = v[1], v[2], v[3]
    dit(('a NaN on rank 1 only, step 2, %s: both ranks skip together, no hang, opt.skipped the same'):format(where), function()
      local r = runs()
      local want = W.reference(name, 2, STEPS, skip)
      for rank = 0, 1 do
        local got = r[rank][name]
        assert.truthy(got, text)
        assert.are.equal(1, got.skipped, ('%s rank %d opt.skipped'):format(name, rank))
        agree(got.params, want, 1e-12, ('%s rank %d parameters'):format(name, rank))
      end
      assert.are.same(r[0][name].params, r[1][name].params)
      -- and the skipped step did move nothing: not the run without the fault
      local clean = W.reference(name, 2, STEPS)
      assert.is_true(math.abs(clean[1] - want[1]) > 1e-9)
    end)
  end
end)

-- One process, recorded from the code before the _own_sync hook (tests/dist/wsam_traj.lua's
-- M.train(name, 0, 1, 4), printed with %.17g). Bit for bit on the machine that recorded
-- them; REL allows another BLAS kernel or libm tanh to move the last bits (as
-- optim_classics_spec.lua's float64 bound), far below what any change of order would move.
local REL = 1e-14
local BEFORE = {
  dec = [[
    0.40558458116687135,0.35455663559001793,0.10074255880133327,0.14370475543148531,
    0.1703847118955073,0.37503545730388221,-0.034748182478727893,0.047751787478242221,
    -0.2741355810695052,0.099391932610120387,0.19545112989765362,0.44533665358875368,
    0.22100490430657332,-0.39893504030930521,-0.40777983773413989,-0.43807646254475141,
    -0.22918399217784194,0.11922163960245183,0.17774190434284162,0.33793450835873684,
    -0.32512210059499097,-0.26260056329374998,-0.3656297184517685,-0.27860365885790467,
    -0.47272214694425341,-0.19769506534113712,-0.27311913194248311,-0.060965269995788156,
    -0.28472837348636154,0.43948483990685605,0.28226348847116872,-0.028559509350464973,
    -0.24170118897681703,-0.24123610568401679,0.09677475784991213,0.262368313691139,
    -0.065335367696926605,-0.27743686748382529,0.2116463003544507,-0.20716299152841897,
    0.2204853558938174,-0.12370828503011229,0.0026383200976341841,0.14002856023164773,
  ]],
  cpl = [[
    0.40558458116687141,0.35455663559001793,0.1007425588013333,0.14370475543148525,
    0.1703847118955073,0.37503545730388216,-0.034748182478727872,0.047751787478242214,
    -0.2741355810695052,0.099391932610120456,0.19545112989765362,0.44533665358875374,
    0.22100490430657332,-0.39893504030930516,-0.40777983773413989,-0.43807646254475147,
    -0.22918399217784197,0.11922163960245186,0.17774190434284157,0.33793450835873678,
    -0.32512210059499091,-0.26260056329375003,-0.36562971845176845,-0.27860365885790456,
    -0.47272214694425341,-0.19769506534113718,-0.27311913194248311,-0.060965269995788184,
    -0.2847283734863616,0.43948483990685605,0.28226348847116889,-0.028559509350464921,
    -0.241701188976817,-0.24123610568401682,0.096774757849912171,0.26236831369113917,
    -0.065335367696926605,-0.27743686748382523,0.21164630035445067,-0.20716299152841908,
    0.2204853558938174,-0.12370828503011233,0.0026383200976341286,0.14002856023164773,
  ]],
  dec_clip = [[
    0.39053936301901432,0.39387859593783159,0.085164068215889219,0.20817031603779187,
    0.17170830582791827,0.37355700800341923,-0.025597828358136229,0.15194185767214924,
    -0.25287951500789096,0.057306455539037911,0.21295445116067646,0.4208121931980221,
    0.25714946255395438,-0.46273517313380685,-0.35761128760661098,-0.44436158496982703,
    -0.25189049050397427,0.16263190546934181,0.15620199040527277,0.33262307534652735,
    -0.33951387174820236,-0.20555645931290806,-0.39578655371422466,-0.23881599320450897,
    -0.47098275102646897,-0.23728393506619885,-0.2774641266729439,-0.07232014716788096,
    -0.26835782199797525,0.43865482833617142,0.3264809950702201,0.039053858730267225,
    -0.2086087364049706,-0.37283618980943978,0.17490345111143582,0.29121494584990176,
    -0.1821349118708899,-0.356392340221515,0.069898011446804284,-0.12440932207411863,
    0.11161743727758337,-0.011329863510463903,0.0337842545449131,0.2854148033488183,
  ]],
  cpl_clip = [[
    0.39053936301901426,0.39387859593783159,0.085164068215889219,0.20817031603779187,
    0.17170830582791827,0.37355700800341929,-0.025597828358136229,0.15194185767214921,
    -0.25287951500789102,0.057306455539037925,0.21295445116067646,0.42081219319802216,
    0.25714946255395438,-0.4627351731338068,-0.35761128760661098,-0.44436158496982703,
    -0.25189049050397427,0.16263190546934178,0.15620199040527277,0.33262307534652741,
    -0.33951387174820236,-0.20555645931290806,-0.39578655371422478,-0.23881599320450897,
    -0.47098275102646897,-0.23728393506619883,-0.27746412667294396,-0.07232014716788096,
    -0.2683578219979752,0.43865482833617148,0.32648099507022016,0.039053858730267232,
    -0.2086087364049706,-0.37283618980943978,0.17490345111143585,0.29121494584990171,
    -0.18213491187088984,-0.35639234022151506,0.069898011446804284,-0.12440932207411864,
    0.11161743727758337,-0.011329863510463905,0.0337842545449131,0.2854148033488183,
  ]],
  acc_clip = [[
    0.39041682087747043,0.39323271796634146,0.085899342129643022,0.20893667603547392,
    0.17153825233641296,0.37343830841822351,-0.025205677022494221,0.15280459654310857,
    -0.25307826384400534,0.057513547835479364,0.21250391197870325,0.4212099168654368,
    0.25704678892168015,-0.46148124891433467,-0.3585420648461814,-0.44510327083969187,
    -0.25195856987015108,0.16170787447991355,0.15662019420676485,0.33322397846671475,
    -0.33936641759299424,-0.20576369000420119,-0.39497298047591506,-0.23942237675418485,
    -0.47153102509595057,-0.23824301431831496,-0.27738089195072291,-0.072691030193740291,
    -0.26791433723726477,0.43884077207912514,0.32648135771026104,0.038576720030564997,
    -0.20749135498882162,-0.37316495361855795,0.17540600766179143,0.28999835268361934,
    -0.1851641814619957,-0.35900191575199192,0.067791108476727105,-0.12277238354962985,
    0.10945180669083489,-0.0087210608855528317,0.033422574815842251,0.29015696960764187,
  ]],
}

describe('WSAM with one process (no mpirun)', function()
  for _, name in ipairs { 'dec', 'cpl', 'dec_clip', 'cpl_clip', 'acc_clip' } do
    local list = BEFORE[name]
    it(name .. ': as the code before the hook (bit for bit here, 1e-14), and the reference of a world of one (1e-12)', function()
      local want = {}
      for v in list:gmatch('[^,%s]+') do want[#want + 1] = tonumber(v) end
      local _, got, skipped = W.train(name, 0, 1, STEPS)
      assert.are.equal(0, skipped)
      assert.are.equal(#want, #got)
      agree(got, want, REL, name .. ' against the values recorded before the hook')
      agree(got, (W.reference(name, 1, STEPS)), 1e-12, name .. ' against the reference')
    end)
  end
end)
