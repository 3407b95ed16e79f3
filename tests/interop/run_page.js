// Open one page in Debian's headless Chromium and print what it reports.
//
//   node run_page.js URL TIMEOUT_MS
//
// The page signals completion by setting `window.__result` (any JSON value);
// this script prints `RESULT <json>` and exits 0, or prints `ERROR <message>`
// and exits 1 on timeout.  Console lines of the page are echoed as `CONSOLE`.
// Never downloads a browser: executablePath is /usr/bin/chromium.
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');
const CHROMIUM_FLAGS = require('./chromium_flags');

async function main() {
  const [url, timeoutArg] = process.argv.slice(2);
  const timeout = parseInt(timeoutArg || '30000', 10);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'realtime-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  let code = 0;
  try {
    const page = context.pages()[0] || await context.newPage();
    page.on('console', (msg) => console.log('CONSOLE ' + msg.text()));
    page.on('pageerror', (err) => console.log('PAGEERROR ' + err.message));
    await page.goto(url);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout });
    const result = await page.evaluate(() => window.__result);
    console.log('RESULT ' + JSON.stringify(result));
  } catch (err) {
    console.log('ERROR ' + err.message.split('\n')[0]);
    code = 1;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
}

main();
