// Tessera against ONNX Runtime Web (the engine under transformers.js) on the same model, in the same headless
// Chromium, in the same run: our WebGPU path against its WebGPU execution provider, our CPU wasm path against
// its wasm one (one thread each). A benchmark, not a test: it prints one JSON object.
//
//   node bench/peer-bench.mjs [--model models/tessera-shapes] [--rows N] [--runs R] [--paths webgpu,wasm]
//
// The peer runs the PyTorch reference exported to ONNX (trainer/export_onnx.py, made under target/onnx/ when
// missing, with trainer/.venv). Each side is measured --runs times, the sides interleaved so that the
// machine's noise falls on all of them; figures are medians. tokens/s runs from the first finished token row
// to row --rows, so start-up is reported apart (first_row_ms). SwiftShader is a software GPU: the WebGPU
// figures compare engines, not what a real GPU does. --paths wasm measures only the CPU pair (minutes, where
// SwiftShader's pair takes a quarter of an hour).

import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, launchChromium, serveRoot } from '../tests/browser/browser.mjs';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/tessera-shapes' },
    rows: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    paths: { type: 'string', default: 'webgpu,wasm' },
  },
});
const model = opt.model.replace(/\/+$/, '');
const onnxDir = join(ROOT, 'target/onnx', model.split('/').pop());
if (!existsSync(join(onnxDir, 'transformer.onnx'))) {
  const python = join(ROOT, 'trainer/.venv/bin/python');
  if (!existsSync(python)) {
    console.error('error: trainer/.venv is missing: run `cargo xtask bench` once (it makes the venv), then this again');
    process.exit(1);
  }
  const made = spawnSync(python, [join(ROOT, 'trainer/export_onnx.py'), join(ROOT, model), onnxDir], { stdio: 'inherit' });
  if (made.status !== 0) process.exit(1);
}

// [name, page query, path]: each path is our engine and the peer on the same kind of device.
const PAIRS = [
  ['tessera_webgpu', 'engine=tessera&backend=webgpu', 'webgpu'],
  ['ort_webgpu', 'engine=ort&ep=webgpu', 'webgpu'],
  ['tessera_cpu', 'engine=tessera&backend=cpu', 'wasm'],
  ['ort_wasm', 'engine=ort&ep=wasm', 'wasm'],
];
const paths = opt.paths.split(',');
for (const path of paths) {
  if (!PAIRS.some(([, , p]) => p === path)) {
    console.error(`error: --paths takes webgpu and/or wasm, not \`${path}\``);
    process.exit(1);
  }
}
const SIDES = PAIRS.filter(([, , path]) => paths.includes(path));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const server = await serveRoot();
const browser = await launchChromium({ webgpu: true });
const runs = Object.fromEntries(SIDES.map(([name]) => [name, []]));
try {
  for (let run = 0; run < Number(opt.runs); run++) {
    for (const [name, query] of SIDES) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(`${server.url}/bench/peer-bench.html?${query}&model=${model}&rows=${opt.rows}`);
      await page.waitForFunction(() => window.benchResult || window.benchError, null, { timeout: 0, polling: 500 });
      const { benchResult: r, benchError } = await page.evaluate(() => ({ benchResult: window.benchResult, benchError: window.benchError }));
      await context.close();
      if (benchError) throw new Error(`${name}: ${benchError}`);
      if (r.rows.length < 2) throw new Error(`${name}: fewer than two token rows`);
      const [first, last] = [r.rows[0], r.rows.at(-1)];
      runs[name].push({
        engine: r.engine, backend: r.backend, load_ms: r.loadMs, first_row_ms: first.ms,
        tokens_per_s: (last.tokens - first.tokens) / ((last.ms - first.ms) / 1000),
      });
    }
  }
  const summary = Object.fromEntries(Object.entries(runs).map(([name, rs]) => [name, {
    engine: rs[0].engine,
    backend: rs[0].backend,
    tokens_per_s: median(rs.map((r) => r.tokens_per_s)),
    first_row_ms: median(rs.map((r) => r.first_row_ms)),
    load_ms: median(rs.map((r) => r.load_ms)),
    runs_tokens_per_s: rs.map((r) => r.tokens_per_s),
  }]));
  const mb = (path) => statSync(join(ROOT, path)).size / 1e6;
  console.log(JSON.stringify({
    model, rows: Number(opt.rows), runs: Number(opt.runs), chromium: browser.version(),
    ...summary,
    // Same run, same browser: ours over the peer's, on the GPU path and on the CPU path.
    ...(paths.includes('webgpu') && {
      ratio_webgpu: summary.tessera_webgpu.tokens_per_s / summary.ort_webgpu.tokens_per_s,
      first_row_ratio_webgpu: summary.ort_webgpu.first_row_ms / summary.tessera_webgpu.first_row_ms,
    }),
    ...(paths.includes('wasm') && {
      ratio_wasm: summary.tessera_cpu.tokens_per_s / summary.ort_wasm.tokens_per_s,
      first_row_ratio_wasm: summary.ort_wasm.first_row_ms / summary.tessera_cpu.first_row_ms,
    }),
    tessera_wasm_mb: mb('pkg/tessera_bg.wasm'),
    // The runtime module the peer's page fetched (its WebGPU bundle serves both execution providers).
    ort_wasm_mb: mb(server.hits.find((p) => p.startsWith('/node_modules/onnxruntime-web/') && p.endsWith('.wasm'))),
  }));
} finally {
  await browser.close();
  server.close();
}
