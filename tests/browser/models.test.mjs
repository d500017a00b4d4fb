// The worker's model-file checks (www/models.js) in Node: no browser needed for the GPU binding limit,
// sha256 lists and cut-off downloads.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bindingProblem, parseSha256, parseSha256List, readBytes } from '../../www/models.js';

test('a tensor larger than the GPU binds is named with both sizes; smaller ones pass', () => {
  const largest = { name: 'gpt.tok_embeddings', bytes: 300000 * 256 * 4 };
  assert.equal(bindingProblem(largest, 2 ** 30), null);
  assert.equal(bindingProblem(largest, 0), null, 'an unknown limit is not a problem');
  assert.equal(bindingProblem(largest, 128 * 2 ** 20),
    'tensor `gpt.tok_embeddings` needs 293 MiB in one GPU buffer and this GPU binds at most 128 MiB');
});

test('sha256 lists: one hash, or a file per line; anything else is a BadWeights error', () => {
  assert.equal(parseSha256(`${'AB'.repeat(32)}  model.safetensors\n`), 'ab'.repeat(32));
  assert.throws(() => parseSha256('not a hash'), { name: 'BadWeights' });
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  assert.deepEqual(parseSha256List(`${a}  model-00001-of-00002.safetensors\n${b} *model-00002-of-00002.safetensors\n`),
    [{ name: 'model-00001-of-00002.safetensors', sha256: a }, { name: 'model-00002-of-00002.safetensors', sha256: b }]);
  assert.deepEqual(parseSha256List(a), [{ name: 'model.safetensors', sha256: a }]);
  assert.throws(() => parseSha256List(`${a}  ../../secret`), { name: 'BadWeights', message: /not a file of the folder/ });
  assert.throws(() => parseSha256List(''), { name: 'BadWeights' });
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
