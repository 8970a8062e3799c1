// Open a speedscope file in speedscope's own app (npm speedscope's
// dist/release, served from a loopback HTTP server with the profile) in
// Debian's headless chromium, driven by playwright-core:
//     node speedscope_open.mjs PROFILE.json SCREENSHOT.png TITLE NAME...
// Passes (exit 0) when the page loads with no console error and no import
// failure, shows TITLE (the first profile's name) in its toolbar, and the
// sandwich view (functions by self time) lists every NAME.
// Exit 77 when chromium is not there.
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const [profile, screenshot, title, ...names] = process.argv.slice(2);
const chromePath = '/usr/bin/chromium';
if (!existsSync(chromePath)) {
  console.log('SKIP: no /usr/bin/chromium');
  process.exit(77);
}
const here = dirname(fileURLToPath(import.meta.url));
const app = join(here, 'node_modules/speedscope/dist/release');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css',
                '.json': 'application/json', '.png': 'image/png', '.wasm': 'application/wasm' };

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  const file = path === '/p.speedscope.json' ? profile : join(app, normalize(path === '/' ? '/index.html' : path));
  if (!file.startsWith(app) && file !== profile) return res.writeHead(403).end();
  try {
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': types[extname(file)] || 'application/octet-stream' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const port = server.address().port;
const fail = (why) => { console.log('FAIL:', why); process.exitCode = 1; };
const deadline = setTimeout(() => { console.log('FAIL: timed out'); process.exit(1); }, 90000);

const browser = await chromium.launch({ executablePath: chromePath, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`http://127.0.0.1:${port}/index.html#profileURL=http://127.0.0.1:${port}/p.speedscope.json`);
  // The toolbar's view tabs appear once a profile is in.
  await page.getByText(/Sandwich/).first().waitFor({ timeout: 30000 });
  const body = await page.locator('body').innerText();
  if (/Something went wrong|Failed to|Unrecognized format/i.test(body)) fail(`import failed: ${body.slice(0, 300)}`);
  if (!body.includes(title)) fail(`the toolbar does not show ${title}`);
  await page.getByText(/Sandwich/).first().click();
  await page.waitForTimeout(500);
  const table = await page.locator('body').innerText();
  if (process.env.DEBUG_SS) console.log(table.slice(0, 1500));
  for (const n of names) if (!table.includes(n)) fail(`the sandwich view does not list ${n}`);
  await page.getByText(/Left Heavy/).first().click();
  await page.waitForTimeout(300);
  await page.screenshot({ path: screenshot });
  if (errors.length) fail(`console errors: ${errors.slice(0, 3).join(' | ')}`);
  if (!process.exitCode) console.log(`ok: speedscope opened ${profile} (${names.length} names seen); screenshot ${screenshot}`);
} finally {
  await browser.close();
  server.close();
  clearTimeout(deadline);
}
