// Loads a running job's dashboard in Debian's headless chromium and reports
// what the page shows, as one JSON object on stdout; saves screenshots.
//
//   node dashboard.mjs http://127.0.0.1:PORT/ OUT_DIR
//
// Run by tests/tests/dashboard.rs, which checks the report against the
// job's API. Exits non-zero when the page never renders.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [url, outDir] = process.argv.slice(2);
if (!url || !outDir) {
  console.error('usage: node dashboard.mjs URL OUT_DIR');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) errors.push(`HTTP ${r.status()} for ${r.url()}`); });
  await page.goto(url);

  // Numbers the page shows now; `refreshes` counts completed refreshes.
  const read = () => page.evaluate(() => ({
    refreshes: Number(document.body.dataset.refreshes ?? 0),
    state: document.querySelector('[data-testid=state]').textContent,
    pipeline: document.querySelector('[data-testid=pipeline]').textContent,
    sourceRecords: document.querySelector('[data-testid=source-records]').textContent,
    sinkRecords: document.querySelector('[data-testid=sink-records]').textContent,
    graphNodes: [...document.querySelectorAll('#graph [data-node]')].map((n) => n.dataset.node),
    graphEdges: [...document.querySelectorAll('#graph [data-edge]')].map((n) => n.dataset.edge),
    nodeRates: Object.fromEntries([...document.querySelectorAll('#graph [data-node]')]
      .map((n) => [n.dataset.node, n.querySelector('.node-rate').textContent])),
    nodeState: Object.fromEntries([...document.querySelectorAll('#graph [data-node]')]
      .filter((n) => n.querySelector('.node-state'))
      .map((n) => [n.dataset.node, n.querySelector('.node-state').textContent])),
    lagRows: [...document.querySelectorAll('[data-partition]')].map((r) => ({
      partition: r.dataset.partition,
      cells: [...r.querySelectorAll('td')].map((c) => c.textContent),
    })),
    checkpoints: [...document.querySelectorAll('[data-checkpoint]')].map((c) => Number(c.dataset.checkpoint)),
    checkpointNote: document.querySelector('[data-testid=checkpoint-latest]').textContent,
    sparklines: [...document.querySelectorAll('[data-spark]')].map((s) => s.dataset.spark),
    problems: document.querySelector('[data-testid=problems]').textContent,
  }));

  await page.waitForFunction(() => Number(document.body.dataset.refreshes ?? 0) >= 2, null, { timeout: 60_000 });
  const first = await read();
  await page.screenshot({ path: join(outDir, 'dashboard-first.png'), fullPage: true });
  // At least three more refreshes: the numbers have had time to move.
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes) >= n + 3, first.refreshes, { timeout: 60_000 });
  const second = await read();
  const screenshot = join(outDir, 'dashboard.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ first, second, screenshot, errors }));
} finally {
  await browser.close();
}
