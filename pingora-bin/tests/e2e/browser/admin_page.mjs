// Drives the admin status page in headless Chromium for pingora-bin/tests/admin_browser.rs.
//
//   node admin_page.mjs ADMIN_URL UP_BACKEND DOWN_BACKEND SCREENSHOT
//
// Talks with the test over stdio, one line each way:
//   -> READY            the page shows both backends up
//   <- STOPPED          the test stopped DOWN_BACKEND's origin
//   -> DOWN <ms>        the page (refreshing itself, never reloaded) shows it down
//   -> DRAINED          after clicking UP_BACKEND's Drain button, the page shows it
//                       draining and lists the change
// Any failure prints "FAIL <why>" and exits 1. Needs PLAYWRIGHT_DIR (a directory with
// node_modules/playwright-core, as tools/browser) and CHROMIUM (the browser's executable).
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [adminUrl, upBackend, downBackend, screenshot] = process.argv.slice(2);
const require = createRequire(join(process.env.PLAYWRIGHT_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const row = (addr) => `tr[data-backend="${addr}"]`;

const profile = mkdtempSync(join(tmpdir(), 'pingora-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(adminUrl)) external.push(r.url()); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(adminUrl, { timeout: 10000 });
  await page.waitForSelector(`${row(upBackend)}[data-state="up"]`, { timeout: 10000 });
  await page.waitForSelector(`${row(downBackend)}[data-state="up"]`, { timeout: 10000 });
  await page.waitForFunction(
    () => document.getElementById('refreshed').textContent.startsWith('refresh'),
    null, { timeout: 10000 });
  console.log('READY');
  if ((await nextLine()) !== 'STOPPED') throw new Error('expected STOPPED');
  const stopped = Date.now();
  await page.waitForSelector(`${row(downBackend)}[data-state="down"]`, { timeout: 8000 });
  console.log(`DOWN ${Date.now() - stopped}`);
  // Let the charts have a few points, then keep the picture.
  await page.waitForTimeout(2500);
  await page.screenshot({ path: screenshot, fullPage: true });
  await page.click(`${row(upBackend)} button`);
  await page.waitForSelector(`${row(upBackend)}[data-state="draining"]`, { timeout: 8000 });
  await page.waitForFunction(
    (b) => document.getElementById('events').textContent.includes(`${b} of web/api drained`),
    upBackend, { timeout: 8000 });
  if (external.length) throw new Error(`requests outside the admin endpoint: ${external}`);
  if (errors.length) throw new Error(`script errors: ${errors}`);
  console.log('DRAINED');
} catch (e) {
  console.log(`FAIL ${e && e.message ? e.message.split('\n')[0] : e}`);
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  lines.close();
}
