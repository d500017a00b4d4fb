// Weights stream into the engine as they arrive, driven through the worker's own protocol: an untrained
// model of the default architecture (`tessera init --preset default --dtype f16`, 28 MB) loads on WebGPU
// (SwiftShader) with wasm memory a fraction of the file, each tensor uploaded as its bytes complete, and on the
// CPU backend with about one copy of it (the packed weights themselves); a whole-file load would hold the file
// in wasm memory besides. Real headless Chromium; the figures are the engine's own (printed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverAndBrowser, ROOT } from './browser.mjs';
import { openPage, loadInWorker as workerLoad } from './page.mjs';

const env = serverAndBrowser();

/** A worker in a page of its own loads `url` (`preferGpu` or not) and answers READY or ERROR. */
async function loadInWorker(url, preferGpu) {
  const { page, context } = await openPage(env.browser, env.server, '/www/protocol.js');
  try {
    return await workerLoad(page, url, preferGpu);
  } finally {
    await context.close();
  }
}

/** The stored bytes of the largest tensor in safetensors `bytes`. */
function largestTensorBytes(bytes) {
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString());
  return Math.max(...Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, t]) => t.data_offsets[1] - t.data_offsets[0]));
}

test('a 28 MB model streams into WebGPU without wasm holding the file, and into the CPU backend with one copy of it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-streamed-'));
  try {
    const cli = process.env.TESSERA_CLI ?? join(ROOT, 'target/debug/tessera');
    execFileSync(cli, ['init', '--preset', 'default', '--dtype', 'f16', '--out', join(dir, 'model')]);
    const file = (name) => readFileSync(join(dir, 'model', name));
    const weights = file('model.safetensors');
    for (const name of ['config.json', 'model.safetensors', 'model.sha256']) env.server.override(`/streamed/${name}`, file(name));

    const gpu = await loadInWorker('/streamed/', true);
    assert.equal(gpu.type, 'ready', gpu.message);
    assert.equal(gpu.backend, 'webgpu');
    const { loading } = gpu.info;
    console.log(`WebGPU: ${weights.length} bytes of weights loaded in ${loading.ms.toFixed(0)} ms; wasm memory ${loading.wasmBytesBefore} → ${loading.wasmBytes} bytes, at most ${loading.peakPartialBytes} bytes of one tensor held`);
    assert.equal(gpu.info.source.bytes, weights.length);
    assert.ok(loading.peakPartialBytes <= largestTensorBytes(weights), `${loading.peakPartialBytes} bytes of one tensor held`);
    // A whole-file load copies the file into wasm memory before its first tensor: it grows by the file at least.
    const grown = loading.wasmBytes - loading.wasmBytesBefore;
    assert.ok(grown < 0.6 * weights.length, `wasm memory grew by ${grown} bytes for a ${weights.length}-byte file`);

    const cpu = await loadInWorker('/streamed/', false);
    assert.equal(cpu.type, 'ready', cpu.message);
    assert.equal(cpu.backend, 'cpu');
    console.log(`CPU: wasm memory ${cpu.info.loading.wasmBytesBefore} → ${cpu.info.loading.wasmBytes} bytes in ${cpu.info.loading.ms.toFixed(0)} ms`);
    // The packed weights are about one copy of the file; a whole-file load holds the file besides them.
    const cpuGrown = cpu.info.loading.wasmBytes - cpu.info.loading.wasmBytesBefore;
    assert.ok(cpuGrown < 1.6 * weights.length, `wasm memory grew by ${cpuGrown} bytes for a ${weights.length}-byte file`);
    assert.equal(cpu.info.sha256, gpu.info.sha256);
  } finally {
    for (const name of ['config.json', 'model.safetensors', 'model.sha256']) env.server.restore(`/streamed/${name}`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model too large for this browser is refused by name before any byte of its weights is fetched', async () => {
  // Janus-Pro-1B's architecture with two shards the server does not have: only the config says how large it is.
  const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  env.server.override('/huge/config.json', readFileSync(join(ROOT, 'engine/presets/janus-pro-1b-sized.json')));
  env.server.override('/huge/tokenizer.json', readFileSync(join(ROOT, 'tests/fixtures/deepseek-tokenizer/tokenizer.json')));
  env.server.override('/huge/model.sha256', shards.map((s, i) => `${String(i).repeat(64)}  ${s}\n`).join(''));
  try {
    const refused = await loadInWorker('/huge/', false);
    assert.equal(refused.type, 'error');
    assert.equal(refused.name, 'ModelTooLarge');
    assert.match(refused.message, /1\.\d\d G parameters\) needs about 6\.\d GB of memory on the CPU, more than the 3\.2 GB/);
    // Each shard was asked for its size (HEAD) and nothing more.
    for (const shard of shards) assert.equal(env.server.hits.filter((p) => p === `/huge/${shard}`).length, 1, shard);
  } finally {
    for (const name of ['config.json', 'tokenizer.json', 'model.sha256']) env.server.restore(`/huge/${name}`);
  }
});
