// Browser tests of a node's web face: Debian's chromium driven by Playwright (library only).
// Started by tests/it/browser.rs, which runs the nodes, makes the bundles and a stuck
// transfer, and writes the fixture this script reads (LIENTHONG_BROWSER_FIXTURE). Every page
// is saved as a screenshot in fixture.shots.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const fixture = JSON.parse(readFileSync(process.env.LIENTHONG_BROWSER_FIXTURE, 'utf8'));
const base = fixture.base;
const dirs = [];
let anonymous;
let operator;

// As the machine's notes say: the system chromium, headless, nothing reaching out, a fresh
// profile per context.
async function context(extra) {
  const dir = mkdtempSync(join(tmpdir(), 'lienthong-chromium-'));
  dirs.push(dir);
  return chromium.launchPersistentContext(dir, {
    executablePath: fixture.chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // The node's certificate names an agency, not a host: the test accepts it.
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
    ...extra,
  });
}

async function shot(page, name) {
  await page.screenshot({ path: join(fixture.shots, `${name}.png`), fullPage: true });
}

before(async () => {
  anonymous = await context({});
  operator = await context({
    clientCertificates: [{ origin: base, certPath: fixture.operator.cert, keyPath: fixture.operator.key }],
  });
});

after(async () => {
  await anonymous?.close();
  await operator?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// The page's landmarks and labels: one h1, a main, a banner, every input labelled, every
// table with header cells.
async function accessible(page) {
  assert.equal(await page.locator('h1').count(), 1);
  assert.equal(await page.locator('main#main').count(), 1);
  assert.equal(await page.locator('header').count(), 1);
  for (const input of await page.locator('input:not([type=hidden])').all()) {
    const id = await input.getAttribute('id');
    assert.ok(id && (await page.locator(`label[for="${id}"]`).count()) === 1, `input ${id} has a label`);
  }
  for (const table of await page.locator('table').all()) {
    assert.ok((await table.locator('th').count()) > 0, 'a table has header cells');
  }
  const lang = await page.locator('html').getAttribute('lang');
  assert.ok(lang === 'vi' || lang === 'en');
}

async function upload(file, lang = 'en') {
  const page = await anonymous.newPage();
  await page.goto(`${base}/verify?lang=${lang}`);
  await page.setInputFiles('#bundle', file);
  await Promise.all([page.waitForURL(/\/verify/), page.locator('button[type=submit]').click()]);
  await page.locator('.verdict').waitFor();
  return page;
}

test('the upload form works without JavaScript and is labelled', async () => {
  const page = await anonymous.newPage();
  await page.goto(`${base}/verify?lang=en`);
  assert.equal(await page.locator('h1').innerText(), 'Verify a document');
  assert.ok(await page.getByLabel('Document file (.ltd)').isVisible());
  await accessible(page);
  await shot(page, 'verifier-form');
  await page.goto(`${base}/verify?lang=vi`);
  assert.equal(await page.locator('h1').innerText(), 'Kiểm tra văn bản');
  await page.close();
});

test('a delivered document PASSED, with both signers and the chain', async () => {
  const page = await upload(fixture.files.good);
  const text = await page.locator('main').innerText();
  assert.match(await page.locator('.verdict .indication').innerText(), /^PASSED$/);
  // The lines `lienthong verify` prints: both signers, each chain up to the root.
  assert.match(text, /1\. Nguyễn Văn An, Chủ tịch \[[0-9.A-Z]+\] — official's signature: PASSED/);
  assert.match(text, /2\. .+ — agency seal: PASSED/);
  assert.match(text, /covers the official's signature above/);
  assert.equal((text.match(/^ *root +/gm) || []).length, 2, text);
  assert.ok(text.includes('national root'), text);
  assert.ok(text.includes('took responsibility (hop receipt)'), text);
  assert.ok(text.includes('the file was deleted after the check'), text);
  await accessible(page);
  await shot(page, 'verifier-passed');
  // Printed: the report only, no navigation or forms.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('header nav').isVisible(), false);
  assert.ok(await page.locator('.verdict').isVisible());
  await shot(page, 'verifier-passed-print');
  await page.close();
});

test('the same document with one byte of its PDF changed FAILED, with the reason', async () => {
  const page = await upload(fixture.files.tampered);
  assert.equal(await page.locator('.verdict .indication').innerText(), 'FAILED — HASH_FAILURE');
  const reasons = await page.locator('.verdict .reasons').innerText();
  assert.ok(reasons.includes(fixture.attachment), reasons);
  await shot(page, 'verifier-failed');
  await page.close();
});

test('a document from another root is INDETERMINATE', async () => {
  const page = await upload(fixture.files.foreign, 'vi');
  assert.equal(await page.locator('.verdict .indication').innerText(), 'INDETERMINATE — NO_CERTIFICATE_CHAIN_FOUND');
  assert.ok((await page.locator('.verdict').innerText()).includes('Chưa kết luận được'));
  await shot(page, 'verifier-indeterminate');
  await page.close();
});

test('the console refuses a browser without an operator certificate', async () => {
  const page = await anonymous.newPage();
  const response = await page.goto(`${base}/console?lang=en`);
  assert.equal(response.status(), 403);
  assert.ok((await page.locator('main').innerText()).includes('The browser sent none'));
  await shot(page, 'console-refused');
  await page.close();
});

test('the console shows the stuck transfer and its Retry button delivers it', async () => {
  const page = await operator.newPage();
  await page.goto(`${base}/console?lang=en`);
  assert.equal(await page.locator('h1').innerText(), 'Operator console');
  const neighbours = await page.locator('#peers + table').innerText();
  assert.ok(neighbours.includes(fixture.stuck.next_hop), neighbours);
  await accessible(page);
  await shot(page, 'console-overview');

  await page.goto(`${base}/console/transfers?lang=en`);
  const row = page.locator('tr', { hasText: fixture.stuck.document });
  await row.waitFor();
  assert.ok((await row.innerText()).includes('retrying'), await row.innerText());
  await accessible(page);
  await shot(page, 'console-transfers-stuck');
  await Promise.all([page.waitForURL(/done=hastened/), row.getByRole('button', { name: /^Retry transfer/ }).click()]);
  assert.ok((await page.locator('.notice').innerText()).includes('being sent now'));
  // Delivered: the transfer leaves the queue (the Rust side checks the recipient has it).
  const deadline = Date.now() + 20000;
  while ((await page.locator('tr', { hasText: fixture.stuck.document }).count()) > 0) {
    assert.ok(Date.now() < deadline, 'the retried transfer is still waiting after 20 s');
    await page.waitForTimeout(250);
    await page.reload();
  }
  assert.ok((await page.locator('#actions + table').innerText()).includes('hastened'));
  await shot(page, 'console-transfers-retried');

  await page.goto(`${base}/console/certificates?lang=en`);
  assert.ok((await page.locator('main').innerText()).includes('CRLs held'));
  await accessible(page);
  await shot(page, 'console-certificates');
  await page.goto(`${base}/console/refusals?lang=vi`);
  await accessible(page);
  await shot(page, 'console-refusals');
  await page.close();
});
