// The worker's model-file checks (www/models.js) in Node: no browser needed for header parsing, the GPU
// binding limit, sha256 files and cut-off downloads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './browser.mjs';
import { bindingProblem, largestTensor, parseSha256, readBytes } from '../../www/models.js';

/** A safetensors file with these tensors' headers (f32) and no data. */
function safetensors(tensors) {
  const header = Buffer.from(JSON.stringify({ __metadata__: { format: 'pt' }, ...tensors }));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(header.length));
  return new Uint8Array(Buffer.concat([length, header]));
}

test('the largest tensor of a real model is found from its header', () => {
  const weights = new Uint8Array(readFileSync(join(ROOT, 'models/tessera-micro/model.safetensors')));
  // The micro model's text embedding, [264, 32] in f32, just ahead of its image head's [256, 32].
  assert.deepEqual(largestTensor(weights), { name: 'text_embed.weight', bytes: 264 * 32 * 4 });
});

test('a tensor larger than the GPU binds is named with both sizes; smaller ones pass', () => {
  const weights = safetensors({
    'gpt.tok_embeddings': { dtype: 'F32', shape: [300000, 256], data_offsets: [0, 0] },
    'gpt.norm': { dtype: 'F32', shape: [256], data_offsets: [0, 0] },
  });
  assert.equal(bindingProblem(weights, 2 ** 30), null);
  assert.equal(bindingProblem(weights, 0), null, 'an unknown limit is not a problem');
  assert.equal(bindingProblem(weights, 128 * 2 ** 20),
    'tensor `gpt.tok_embeddings` needs 293 MiB in one GPU buffer and this GPU binds at most 128 MiB');
});

test('malformed headers and sha256 files are BadWeights errors', () => {
  assert.throws(() => largestTensor(new Uint8Array(4)), { name: 'BadWeights', message: /too short/ });
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 1000n, true);
  assert.throws(() => largestTensor(huge), { name: 'BadWeights', message: /1000-byte header in a 16-byte file/ });
  const junk = new Uint8Array([4, 0, 0, 0, 0, 0, 0, 0, 123, 123, 123, 123]);
  assert.throws(() => largestTensor(junk), { name: 'BadWeights', message: /unreadable header/ });
  assert.equal(parseSha256(`${'AB'.repeat(32)}  model.safetensors\n`), 'ab'.repeat(32));
  assert.throws(() => parseSha256('not a hash'), { name: 'BadWeights' });
});

test('a download shorter than its Content-Length is refused; progress counts every byte', async () => {
  const body = (n) => new ReadableStream({ start(c) { c.enqueue(new Uint8Array(n)); c.close(); } });
  const seen = [];
  const bytes = await readBytes(new Response(body(10), { headers: { 'Content-Length': '10' } }), 'w', (l, t) => seen.push([l, t]));
  assert.equal(bytes.length, 10);
  assert.deepEqual(seen, [[10, 10]]);
  await assert.rejects(readBytes(new Response(body(6), { headers: { 'Content-Length': '10' } }), 'w'),
    { name: 'ModelMissing', message: 'the download of w stopped after 6 of 10 bytes' });
});
