-- tests/fuzz/api_misuse_lab_values.lua — the API-misuse fuzzer's templates for the lab
-- modules (ms.experiment, ms.plot, ms.landscape, ms.objectives, ms.progress): valid
-- arguments as source text, and per field the odd values a mutation puts in their place
-- (api_misuse_lab.lua mutates them; api_misuse_gen.lua's pools supply "anything").
--
-- Everything here stays small and inside the fuzz directory (the child's working
-- directory, a fresh mktemp dir): experiments train an MLP of at most 784-16-8-10 (or the
-- CNN on 8 images) on the fixture Fashion-MNIST (256 training and 128 test images: a
-- mutated size past that fails, it never reads the real data), for one or two epochs;
-- write paths are relative names that no fixture uses ('lab...'), so a call can neither
-- write outside the directory nor change a file another call reads; no value asks for
-- legal but long work (epochs, steps, points and grid sizes stay small).
local V = {}

V.TRAIN, V.TEST = 256, 128         -- the fixture Fashion-MNIST's sizes (api_misuse.lua writes it)

-- A template is a list of {key, source} pairs (key false: positional).
local MLP8, MLP16 = "{'mlp', sizes = {784, 8, 10}}", "{'mlp', sizes = {784, 16, 10}}"
V.EXPERIMENTS = {
  { { 'name', "'sgd'" }, { 'model', MLP8 }, { 'data', '{train = 64, test = 32}' }, { 'optimizer', "'SGD'" },
    { 'lr', '0.1' }, { 'batch_size', '32' }, { 'seed', '1' } },
  { { 'model', MLP16 }, { 'data', "{'fashion_mnist', train = 128, test = 64, normalize = false}" },
    { 'optimizer', "{'Adam', lr = 0.01}" }, { 'epochs', '2' }, { 'batch_size', '64' }, { 'log_every', '2' } },
  { { 'model', "{'mlp', sizes = {784, 16, 8, 10}, activation = 'tanh'}" }, { 'data', '{train = 256, test = 128}' },
    { 'optimizer', "{'SAM', base = {'SGD', lr = 0.05, momentum = 0.9}, rho = 0.05}" }, { 'batch_size', '128' },
    { 'device', "'cpu'" } },
  { { 'model', MLP8 }, { 'data', '{train = 32, test = 16}' }, { 'optimizer', "{'SPSA', preset = 'zeroth_learn'}" },
    { 'batch_size', '16' }, { 'seed', '2' } },
  { { 'model', "{'cnn'}" }, { 'data', '{train = 8, test = 4}' }, { 'optimizer', "'Adam'" }, { 'batch_size', '8' } },
  { { 'model', "{'mlp', sizes = {784, 8, 10}, activation = 'gelu'}" }, { 'data', '{train = 64, test = 32}' },
    { 'optimizer', "{'SGD', lr = {schedule = 'cosine', init = 0.1, T_max = 4}, momentum = 0.9}" },
    { 'batch_size', '16' }, { 'threads', '1' } },
  { { 'model', MLP8 }, { 'data', '{train = 32, test = 16}' }, { 'optimizer', "{'LBFGS', max_iter = 2, history_size = 3}" },
    { 'batch_size', '16' } },
  { { 'name', "'acme'" }, { 'model', MLP8 }, { 'data', '{train = 64, test = 32}' }, { 'optimizer', "{'ACME', lr = 0.01}" },
    { 'batch_size', '32' }, { 'epochs', '2' } },
  { { 'model', MLP8 }, { 'data', '{train = 64, test = 32}' }, { 'optimizer', "{'BSAM', lr = 0.05}" }, { 'batch_size', '32' } },
  { { 'model', MLP8 }, { 'data', '{train = 64, test = 32}' }, { 'optimizer', "'AutoSGM'" }, { 'batch_size', '32' } },
  { { 'model', "{'mlp', sizes = {784, 8, 10}, activation = 'leaky_relu'}" }, { 'data', '{train = 64, test = 32}' },
    { 'optimizer', "{'SGD', lr = {'warmup', steps = 2, schedule = {schedule = 'cosine', init = 0.1, T_max = 4}}}" },
    { 'batch_size', '16' } },
  { { 'name', "'look'" }, { 'model', MLP8 }, { 'data', '{train = 64, test = 32}' },
    { 'optimizer', "{'LookSAM', base = {'Adam', lr = 0.01}, k = 2, name = 'LookSAM-Adam'}" }, { 'batch_size', '16' } },
}
V.EXPERIMENT_ODD = {
  name = { "''", "('x'):rep(300)", "'a/b c'", "'..'", '1', "'\\0'", "'ü-ß'" },
  model = { "{'mlp', sizes = {784, 10}}", "{'mlp', sizes = {784, 0, 10}}", "{'mlp', sizes = {783, 10}}",
            "{'mlp', sizes = {784, 8, 9}}", "{'mlp', sizes = {784}}", "{'mlp', sizes = {784, 8.5, 10}}",
            "{'mlp', sizes = {784, 8, 10}, activation = 'softsign'}", "{'rnn'}", "{'cnn', sizes = {784, 10}}",
            "{'mlp', 'cnn'}", "{type = 'mlp', 'cnn'}", "'mlp'", "'cnn'", "{sizes = {[1] = 784, [3] = 10}}",
            "{'mlp', sizes = {784, 2^24, 10}}", "{'mlp', sizes = ms.tensor({784, 10})}", '{}',
            "{'mlp', sizes = {784, 8, 10, n = 3}}", "{'mlp', sizes = {784, -8, 10}}" },
  data = { '{train = 0}', '{train = 257, test = 32}', '{train = 60001}', '{train = 64, test = 129}', "{'cifar10'}",
           "{train = 64, test = 32, normalize = 'yes'}", '{train = 1, test = 1}', '{train = 2.5, test = 4}',
           "'fashion_mnist'", '{train = 64, test = 32, normalize = false}',
           "{'fashion_mnist', train = 64, test = 32, shuffle = true}", '{}', '{train = 64}' },
  optimizer = { "'SGD'", "'Nope'", "{'SAM'}", "{'SAM', base = 'SGD'}", "{'SAM', base = {'SAM', base = {'SGD', lr = 0.1}}}",
                "{'SGD', lr = -1}", "{'SGD', lr = 0/0}", "{'SGD', criterion = 1}", "{'SPSA', preset = 'nope'}",
                "{'SPSA', preset = 1}", "{'Adam', lr = {schedule = 'nope'}}", "{'Adam', lr = {schedule = 'cosine'}}",
                "{'Adam', lr = {schedule = 'cosine', init = 0.1, T_max = 0}}",
                "{'SGD', lr = {schedule = 'cosine', args = {init = 0.1, T_max = 4}, init = 1}}",
                "{'SGD', momentum = (function() local t = {} t[1] = t return t end)()}",
                "{'SGD', groups = {{match = 'bias', lr_scale = 0}}}", "{'SGD', lr = 0.1, name = 1}",
                "{'SGD', class = 'Adam'}", "{class = 'SGD', lr = 0.1}", "{'Optimizer'}", "{'SGD', lr = print}",
                "{'SGD', lr = ms.rand(1)}", "{'SGD', [2] = 1}", "{'SGD', lr = {1, 2}}", "{'BSAM', num_data = 0}",
                "{'LBFGS', max_iter = 2^31}", "{'SPSA', preset = 'zeroth_learn', n = 0}", '{}', "{'schedule'}",
                "{'SAM', base = {'SGD', lr = 0.1}, rho = -1}", "{'ACME', lr = {'warmup', steps = 2}}" },
  lr = { '0.1', '0', '-1', '0/0', '1/0', "'x'", "{schedule = 'cosine', init = 0.1, T_max = 4}", '1e308' },
  epochs = { '1', '2', '0', '-1', '1.5', '2^31', "'1'", '1/0' },
  batch_size = { '1', '7', '0', '2^31', '2^32', '-1', '0.5' },
  seed = { '0', '2^53', '2^53 - 1', '-1', '0.5', '2^63' },
  log_every = { '1', '3', '0', '2^40', '-2' },
  threads = { '1', '2', '0', '1025', '-1', '2.5' },
  device = { "'cpu'", "'auto'", "'cuda'", "'cuda:0'", "'gpu'", '1' },
}
V.EXPERIMENT_UNKNOWN = { 'bogus', 'Epochs', 'lr_', 'optimiser', 'out', 'steps', '1x' }

V.RUN_OPTS = { "{quiet = true}", "{out = 'lab_runs'}", "{out = 'lab_runs', resume = false}", "{out = 'runs'}",
               "{out = 'lab_runs', on_step = function(row) end}",
               "{on_step = function(row) for i = 1, #row do row[i] = nil end end}", 'nil', '{}' }
V.RUN_OPTS_ODD = { "{out = 'ok.csv'}", "{out = ''}", "{out = 'lab/' .. ('x'):rep(300)}", '{out = 1}', '{quiet = 1}',
                   "{resume = 'no'}", '{on_step = 1}', '{bogus = true}', "{out = 'empty/x'}", "{out = '/dev/null'}",
                   "{out = 'lab_runs', quiet = false}", "{out = 'lab\\nruns'}", '{on_step = ms.nn.ReLU()}' }

V.GRID_AXES = { "{optimizer = {'SGD', 'Adam'}, seed = {1, 2}}", '{lr = {0.1, 0.01}}',
                "{['optimizer.momentum'] = {0, 0.9}, optimizer = 'SGD'}",
                "{['model.sizes'] = {{784, 8, 10}, {784, 16, 10}}}", "{seed = {1, 2, 3}, name = 'g'}",
                "{optimizer = {{'SAM', base = {'SGD', lr = 0.1}}, 'Adam'}}", "{['optimizer.base.lr'] = {0.1}}" }
V.RUN_ALL_AXES = { '{lr = {0.1, 0.01}}', "{seed = {1, 2}, name = 'g'}", "{optimizer = {'SGD', 'Adam'}}", '{seed = {3}}' }
V.GRID_ODD = { '{seed = {}}', "{['a..b'] = {1}}", '{[1] = 2}', "{['.lr'] = {1}}", "{['lr.'] = {1}}",
               "{['optimizer.lr'] = {0.1}, optimizer = ms.rand(1)}", '{lr = ms.rand(3)}',
               '{seed = (function() local t = {} t[1] = t return t end)()}',
               '{a = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b = {1, 2, 3, 4, 5, 6, 7, 8, 9}, c = {1, 2, 3, 4, 5, 6, 7, 8, 9}}',
               "{['model.sizes.1'] = {784}}", "{['data.train.x'] = {1}}", '{lr = {n = 2}}' }

-- Read paths of the lab fixtures (api_misuse_lab.lua writes them; RUN_DIRS: the runs' ids).
V.LOAD_PATHS = { "'runs'", "'runs/'", "'runs_bad'", "'runs_bad/unfinished'", "'runs_bad/corrupt'",
                 "'runs_bad/csv'", "'runs_bad/empty'", "'ok.csv'", "'dir'", "'missing'", "''", "'.'" }
V.CONFIG_PATHS = { "'cfg_ok.json'", "'cfg_deep.json'", "'cfg_threads.json'", "'cfg_fields.json'", "'cfg_null.json'",
                   "'cfg_cuda.json'", "'cfg_text.json'", "'cfg_big.json'", "'runs_bad/unfinished'",
                   "'runs_bad/corrupt'", "'empty'", "'missing.json'", "'dir'", "'bad.ck'", "'/dev/null'" }
V.CSV_PATHS = { "'ok.csv'", "'text.csv'", "'bom.csv'", "'empty'", "'bad.idx'", "'/dev/null'", "'dir'", "'lab.log'",
                "'runs_bad/csv/steps.csv'", "'frac.csv'", "'sep.csv'", "'missing'", "''" }
-- Write paths: fresh names only (never a fixture another call reads).
V.WRITE_PATHS = { "'lab.log'", "'lab_out.csv'", "'lab_logs/x.csv'", "'dir'", "''", "'lab.md'", "'lab.txt'",
                  "'runs'", "'lab a;b.csv'", "'lab\\'q.csv'", "'missing/sub/lab.csv'" }
V.IMAGE_PATHS = { "'lab_p.png'", "'lab_p.svg'", "'lab/sub/p.png'", "'lab_p.PNG'", "'lab.pdf'", "'lab_p'", "'.png'",
                  "'dir'", "'lab a;b.png'", "'lab\\'q.png'", "'dir/.png'", "'lab\\nx.png'", "''", "'empty/x.png'" }
-- Text for titles and labels: what could break out of gnuplot's quoting, if anything can.
V.TEXTS = { "'t'", "'a_b^c {x}'", "'line\\nbreak'", "[[x' ; system('touch pwned') ; ']]",
            "[[\\'; system('touch pwned') #]]", "[['; system 'touch pwned'; ']]", "'\\39quoted\\39 \\34double\\34 \\96b\\96 \\36x'",
            "'@DATA@ @OUT@ MS_DATA'", "('w'):rep(2000)", "''", '1', "'ü ß €'", "'%s %d \\\\'" }

return V
