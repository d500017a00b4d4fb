// The closed message protocol between the page and the engine's Web Worker (DESIGN §4), and the named
// errors either side can report, each with what the user can do about it.

/** Page → worker. */
export const ToWorker = Object.freeze({
  LOAD: 'load', // {source: {url} | {files}, preferGpu, fallbackReason?, restarted?}: restarted says why the engine starts again
  INTERPRET: 'interpret', // {id, text, picture: bool, scene: object|null, force: 'new'|'edit'|null}: read a message as the model will
  GENERATE: 'generate', // {id, prompt, typed?, context: Uint32Array|null, settings: {seed, temperature, topK, topP, guidance, keep}}, null: the engine's default; prompt is what the model reads, typed what the user typed
  CANCEL: 'cancel', // {id}
  ENCODE: 'encode', // {id, bytes: ArrayBuffer}
  LOSE_DEVICE: 'lose-device', // {}: destroy the WebGPU device, as a driver reset would (tests, scripting)
  TRAP: 'trap', // {}: trap the wasm engine, as a bug in it would (tests, scripting)
  INSPECT: 'inspect', // {id, bytes: ArrayBuffer}: read an image's provenance claims
  VERIFY: 'verify', // {id, bytes: ArrayBuffer, prompt}: regenerate a PNG from its claims and compare (trust::verify)
  REPLACE: 'replace', // {source: {url} | {files: {config, weights, sha256: Blob, name}}}
});

/** Worker → page. */
export const FromWorker = Object.freeze({
  PROGRESS: 'progress', // {loaded, total, cached}: model bytes (cached: read from this browser's model cache)
  READY: 'ready', // {backend, fallbackReason, restarted, cacheProblem, load, info: {modelId, sha256, parameters, imageSize, grid, trained, family, defaults, source, loading: {ms, wasmBytesBefore, wasmBytes, peakPartialBytes}}}; load: the source to restart with
  TOKEN_ROW: 'token-row', // {id, row, rows, y0, height, rgba, tokens, ms}
  PREVIEW: 'preview', // {id, rows, of, rgba, tokens, ms}: the whole picture so far (codecs that are not row-causal), rows ≥ `rows` placeholders
  DONE: 'done', // {id, png, tokens, stats}
  STOPPED: 'stopped', // {id, png, tokens, stats}: cancelled, the partial image kept
  ENCODED: 'encoded', // {id, tokens, rgba, size}
  ERROR: 'error', // {id?, name, message}
  DEVICE_LOST: 'device-lost', // {id?, message}: the GPU is gone; the page restarts the engine with the same model
  CRASHED: 'crashed', // {id?, message}: the wasm engine trapped; the page restarts it with the same model
  INTERPRETED: 'interpreted', // {id, reading: {canonical, kind, edit, unknown, notes, note, scene, understood}} or {id, name, message}
  INSPECTED: 'inspected', // {id, claims: object|null} or {id, name, message} when the file is unreadable
  VERIFIED: 'verified', // {id, verdict: {outcome: 'verified'|'unsigned'|'not-verified'|'unknown', reason}|null} or {id, name, message}
  REFUSED: 'refused', // {name, message}: a REPLACE model was not accepted; the current model stays loaded
});

/** What to tell the user for each named error. */
const ADVICE = {
  EmptyPrompt: 'Type what you would like to see, or pick an example.',
  PromptTooLong: 'Shorten the prompt and send it again.',
  InvalidSetting: 'Fix the setting shown and try again.',
  BadWeights: 'The model file is damaged or does not fit this app. Reload the page to download it again.',
  BadConfig: 'The model folder is not one this app can load.',
  ModelTooLarge: 'This model does not fit this browser and device; pick a smaller one (the Model panel), or use a GPU that can hold it.',
  BadImage: 'Use a PNG, JPEG, GIF, WebP or BMP image.',
  DeviceError: 'The engine failed on this device. Reload the page to start it again.',
  DeviceLost: 'The engine restarted with the same model and kept the conversation; press Regenerate to draw it again.',
  EngineCrashed: 'The engine restarted with the same model and kept the conversation; press Regenerate to draw it again.',
  ModelMissing: 'The model files could not be downloaded. Check the connection and reload the page.',
  PolicyRefused: 'Ask for a different picture; the conversation goes on.',
  BadPolicy: 'The prompt policy file is not valid; the previous policy stays in force.',
  Busy: 'A picture is still being drawn: press Stop, or wait for it to finish.',
  WasmMissing: 'The app is not built: run `cargo xtask build-web`, then reload.',
};

export function advice(name) {
  return ADVICE[name] ?? 'Something went wrong. Your conversation is kept; try again.';
}
