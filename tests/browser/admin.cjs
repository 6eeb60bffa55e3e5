// Browser test of the admin page (Playwright core + Debian chromium).
// Env: ADMIN (http://host:port), OUT (screenshot dir), DOCS_PNG (copy of the
// detail screenshot), SUBJECT (a sent message whose receipts are awaited),
// TOKEN (optional admin token). Exits non-zero on the first failed check.
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const path = require('path');
const os = require('os');

const ADMIN = process.env.ADMIN;
const OUT = process.env.OUT;
const SUBJECT = process.env.SUBJECT;
const TOKEN = process.env.TOKEN || '';

function check(cond, what) {
  if (!cond) {
    throw new Error('check failed: ' + what);
  }
  console.log('browser: ok: ' + what);
}

async function api(p) {
  const headers = TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {};
  const r = await fetch(ADMIN + p, { headers });
  if (!r.ok) {
    throw new Error(p + ' -> ' + r.status);
  }
  return r.json();
}

/** Bounded wait until every recipient of the message with SUBJECT is delivered. */
async function waitDelivered() {
  const deadline = Date.now() + 90000;
  for (;;) {
    const list = await api('/api/v1/messages?direction=out&q=' + encodeURIComponent(SUBJECT));
    if (list.items.length > 0) {
      const d = await api('/api/v1/messages/' + list.items[0].id);
      if (d.recipients.length > 0 && d.recipients.every((r) => r.state === 'delivered')) {
        return d;
      }
    }
    if (Date.now() > deadline) {
      throw new Error('receipts never arrived for ' + SUBJECT);
    }
    await new Promise((res) => setTimeout(res, 500));
  }
}

async function main() {
  // A POST without the bearer changes nothing, whatever the body type.
  const denied = await fetch(ADMIN + '/api/v1/queue/NOPE/drop', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' });
  check(denied.status === (TOKEN ? 401 : 403), 'API POST without the bearer refused (' + denied.status + ')');
  const sent = await waitDelivered();
  check(sent.receipts.some((r) => r.kind === 'avvenuta-consegna'), 'delivery receipt linked to ' + sent.id);

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pecgate-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  });
  const problems = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('dialog', (d) => d.accept());

    let resp = await page.goto(ADMIN + '/');
    if (page.url().endsWith('/login')) {
      await page.fill('#token', TOKEN);
      await Promise.all([page.waitForURL(ADMIN + '/'), page.click('button[type=submit]')]);
      resp = await page.goto(ADMIN + '/');
    }
    const h = resp.headers();
    check((h['content-security-policy'] || '').includes("script-src 'self'"), 'CSP header on the page');
    check(h['x-content-type-options'] === 'nosniff', 'nosniff header');
    check(h['referrer-policy'] === 'same-origin', 'Referrer-Policy same-origin (the forms keep their Origin)');
    check((await page.getAttribute('html', 'lang')) === 'it', 'Italian by default');
    await page.screenshot({ path: path.join(OUT, 'list.png'), fullPage: true });

    // Search, then open the message.
    await page.fill('#f-q', SUBJECT);
    await Promise.all([page.waitForURL(/q=/), page.press('#f-q', 'Enter')]);
    // The sent message and its receipts (whose subjects quote it) all match.
    check((await page.locator('table.list a', { hasText: SUBJECT }).count()) >= 2, 'search finds "' + SUBJECT + '" and its receipts');
    const link = page.locator('table.list a[href="/messages/' + sent.id + '"]');
    check((await link.count()) === 1, 'search lists the sent message');
    await Promise.all([page.waitForURL(/\/messages\//), link.click()]);
    const rcpt = page.locator('section.recipient').first();
    const rcptText = await rcpt.innerText();
    check(rcptText.includes('consegnato'), 'recipient timeline shows "consegnato"');
    check(rcptText.includes('accettato'), 'recipient timeline shows "accettato"');
    check((await page.locator('a[href^="/api/v1/receipts/"]').count()) >= 2, 'receipt downloads listed');
    await page.screenshot({ path: path.join(OUT, 'message-detail.png'), fullPage: true });

    // A receipt download through the session: the stored bytes.
    const href = await page.locator('a[href^="/api/v1/receipts/"]').first().getAttribute('href');
    const dl = await page.request.get(ADMIN + href);
    check(dl.status() === 200 && dl.headers()['content-type'] === 'message/rfc822', 'receipt download with the session cookie');

    // English.
    await page.goto(page.url() + '?lang=en');
    check((await page.locator('section.recipient').first().innerText()).includes('delivered'), 'English labels with ?lang=en');
    await page.goto(ADMIN + '/?lang=it');

    // Mailbox health.
    await page.goto(ADMIN + '/mailboxes');
    check((await page.locator('section.mailbox').count()) >= 1, 'mailbox overview renders');
    await page.screenshot({ path: path.join(OUT, 'mailboxes.png'), fullPage: true });

    // Queue: retry the first waiting message, if any.
    await page.goto(ADMIN + '/queue');
    const retry = page.locator('form[action$="/retry"] button').first();
    if ((await retry.count()) > 0) {
      await Promise.all([page.waitForURL(/done=retried/), retry.click()]);
      check((await page.locator('.notice.good').count()) === 1, 'retry from the queue view');
    } else {
      check((await page.locator('main p.empty, main table').count()) >= 1, 'queue view renders (empty)');
    }
    await page.screenshot({ path: path.join(OUT, 'queue.png'), fullPage: true });

    // Narrow screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(ADMIN + '/messages/' + sent.id);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, 'no horizontal scrolling at 390 px (scrollWidth ' + width + ')');
    await page.screenshot({ path: path.join(OUT, 'message-detail-390.png'), fullPage: true });

    // A real form POST (session, CSRF token, the browser's own Origin and
    // Sec-Fetch-Site) passes the same-origin check: log out.
    if (TOKEN) {
      await page.setViewportSize({ width: 1280, height: 900 });
      await Promise.all([page.waitForURL(ADMIN + '/login'), page.click('form[action="/logout"] button')]);
      check(page.url() === ADMIN + '/login', 'logout form accepted (same-origin POST from the browser)');
    }

    check(problems.length === 0, 'no console errors or CSP violations' + (problems.length ? ': ' + problems.join(' | ') : ''));
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  if (process.env.DOCS_PNG) {
    fs.copyFileSync(path.join(OUT, 'message-detail.png'), process.env.DOCS_PNG);
  }
}

main().catch((e) => {
  console.error('browser FAIL: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
