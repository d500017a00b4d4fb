// A worker for the origin tests: it fetches the URL it is sent and answers `{ok, status}` or `{error}`, with
// any Content Security Policy violation it heard. It is served as the engine's worker is, with the same headers.
const violations = [];
self.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
self.onmessage = async ({ data: url }) => {
  try {
    const response = await fetch(url);
    self.postMessage({ ok: response.ok, status: response.status, violations });
  } catch (e) {
    // The violation event is queued as the fetch is refused: give it its turn before answering.
    await new Promise((resolve) => setTimeout(resolve, 0));
    self.postMessage({ error: String(e), violations });
  }
};
