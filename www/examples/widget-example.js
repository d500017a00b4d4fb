// Drives the two generators on widget.html: one button draws both, another stops them; the log shows the
// events the elements fire. (A separate file, so the page's Content-Security-Policy needs no inline script.)

const generators = [...document.querySelectorAll('tessera-generator')];
const log = document.getElementById('log');

for (const type of ['tessera-ready', 'tessera-done', 'tessera-error']) {
  document.addEventListener(type, (e) => {
    const { blob, ...rest } = e.detail;
    log.textContent = `${e.target.id}: ${type} ${JSON.stringify(rest)}${blob ? ` (${blob.size}-byte PNG)` : ''}`;
  });
}
document.getElementById('draw').onclick = () => generators.forEach((g) => g.generate().catch(() => {}));
document.getElementById('stop').onclick = () => generators.forEach((g) => g.cancel());
