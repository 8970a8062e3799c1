// lumio stream serve's page in Debian's headless chromium (driven by
// playwright-core): it loads with no console errors, shows the top frames,
// grows when chunks are appended to the followed file, the search
// highlights, the thread filter and the time brush change the graph, and a
// zoom survives an update. A screenshot is saved.
// usage: node serve_page.mjs URL SCREENSHOT TOP_FRAME APPENDED_FRAME APPEND_CMD...
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';

const [url, shot, topFrame, appendedFrame, ...appendCmd] = process.argv.slice(2);
const fail = (msg) => { console.error('FAIL: ' + msg); process.exitCode = 1; throw new Error(msg); };
const errors = [];

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', args: ['--no-sandbox'], timeout: 30000,
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(m.type() + ': ' + m.text()); });
  page.on('pageerror', (e) => errors.push('page error: ' + e.message));
  page.on('requestfailed', (r) => errors.push('request failed: ' + r.url()));
  page.on('response', (r) => { if (r.status() >= 400) errors.push('HTTP ' + r.status() + ': ' + r.url()); });

  await page.goto(url);
  await page.waitForSelector('#chart g.frame');
  const rootValue = () => page.evaluate(() => d3.select('#chart').datum().data.value);
  const summary = () => page.evaluate(() => fetch('/api/summary').then((r) => r.json()));
  const names = () => page.$$eval('#chart g.frame', (gs) => gs.map((g) => g.getAttribute('name')));

  const s0 = await summary();
  if (await rootValue() !== s0.samples) fail(`root ${await rootValue()} != samples ${s0.samples}`);
  const labels = await page.$$eval('#chart .d3-flame-graph-label', (ds) => ds.map((d) => d.textContent));
  if (!labels.includes(topFrame)) fail(`no label '${topFrame}' among ${labels.slice(0, 10)}`);
  if (!(await page.textContent('#summary')).includes(s0.samples + ' samples')) fail('summary line');
  console.log(`loaded: ${s0.samples} samples, top frame ${topFrame} shown`);

  // Zoom into the top frame's first child, then let the graph grow.
  const zoomName = await page.evaluate(() => {
    const root = d3.select('#chart').datum();
    return root.children[0].children ? root.children[0].children[0].data.name : root.children[0].data.name;
  });
  await page.click(`#chart g.frame[name="${zoomName}"]`);

  execFileSync(appendCmd[0], appendCmd.slice(1), { stdio: 'inherit', timeout: 60000 });
  await page.waitForFunction((n) => d3.select('#chart').datum().data.value > n, s0.samples);
  const s1 = await summary();
  await page.waitForFunction((n) => d3.select('#chart').datum().data.value === n, s1.samples);
  console.log(`grew: ${s0.samples} -> ${s1.samples} samples, ${s1.chunks} chunks`);
  const zoomed = await page.evaluate((name) => {
    const root = d3.select('#chart').datum();
    const hit = root.descendants().find((d) => d.data.name === name && !d.data.hide && !d.data.fade);
    return hit ? hit.x1 - hit.x0 : 0;
  }, zoomName);
  if (Math.abs(zoomed - 1) > 1e-9) fail(`the zoom on ${zoomName} was lost (width ${zoomed})`);
  console.log(`zoom on ${zoomName} kept across the update`);
  await page.click('#reset-zoom');
  await page.waitForSelector(`#chart g.frame[name="${appendedFrame}"]`);

  // Search: matching frames turn magenta.
  await page.fill('#search', appendedFrame);
  const lit = await page.$$eval('#chart g.frame rect', (rs) => rs.filter((r) => r.getAttribute('fill').toLowerCase() === '#e600e6').length);
  if (lit < 1) fail('the search highlighted nothing');
  const others = await page.$$eval(`#chart g.frame:not([name="${appendedFrame}"]) rect`, (rs) => rs.filter((r) => r.getAttribute('fill').toLowerCase() === '#e600e6').length);
  if (others) fail(`the search highlighted ${others} frames of other names`);
  console.log(`search '${appendedFrame}': ${lit} frames highlighted`);
  await page.screenshot({ path: shot, fullPage: true });
  await page.fill('#search', '');

  // The thread filter.
  const t = s1.threads.find((x) => x.samples > 0 && x.samples < s1.samples);
  await page.selectOption('#thread', String(t.id));
  await page.waitForFunction((n) => d3.select('#chart').datum().data.value === n, t.samples);
  console.log(`thread ${t.id}: ${t.samples} samples`);
  await page.selectOption('#thread', '');
  await page.waitForFunction((n) => d3.select('#chart').datum().data.value === n, s1.samples);

  // The time brush over the strip: a part of the samples.
  const box = await (await page.$('#timeline')).boundingBox();
  await page.mouse.move(box.x + box.width * 0.1, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.4, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction((n) => { const v = d3.select('#chart').datum().data.value; return v > 0 && v < n; }, s1.samples);
  const ranged = await rootValue();
  const range = await page.textContent('#range');
  console.log(`time range (${range}): ${ranged} samples`);
  const q = range.match(/\((\d+) to (\d+) us\)/);
  if (!q) fail('the range is not shown in microseconds');
  const api = await page.evaluate(([a, b]) => fetch(`/api/flamegraph?from=${a}&to=${b}`).then((r) => r.json()), [q[1], q[2]]);
  if (api.value !== ranged) fail(`the page shows ${ranged} samples, the API ${api.value} for that range`);
  await page.click('#all-time');
  await page.waitForFunction((n) => d3.select('#chart').datum().data.value === n, s1.samples);

  if ((await names()).length === 0) fail('no frames');
  if (errors.length) fail('console errors: ' + errors.join(' | '));
  console.log('screenshot: ' + shot);
} finally {
  await browser.close();
}
