// End to end: an admin account signs in on /admin (issue 18). `ketang admin create-user`
// prints a one-time password; the page signs in with it, shows the TOTP enrolment QR code and
// key; a code computed from that key (RFC 6238) and a new password finish enrolment; the page
// then works with the session cookie (HttpOnly, SameSite=Strict) and its CSRF token: a school
// is created. Sign-out ends the session on the server.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';

import { openPage, describePage, launchBrowser } from '../lib/browser.mjs';
import { suiteRig } from '../lib/rig.mjs';
import { startServer } from '../lib/server.mjs';

const STEP_TIMEOUT_MS = 10_000;

function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0; let acc = 0; const out = [];
  for (const c of s) {
    acc = (acc << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) { bits -= 8; out.push((acc >> bits) & 0xff); }
  }
  return Buffer.from(out);
}

function totp(secret, now = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 1000 / 30)));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(off) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, '0');
}

describe('admin account', () => {
  const rig = suiteRig();
  const { log, pages } = rig;

  it('signs in with a one-time password, enrols TOTP and manages the timetable', async () => {
    try {
      rig.server = await startServer();
      rig.browser = await launchBrowser();
      const otp = await rig.server.createAdminUser('王系统', 'system');
      assert.match(otp, /^[A-Za-z2-9]{20}$/);
      const admin = await openPage(rig.browser, `${rig.server.baseUrl}/admin`, { label: 'admin', log });
      pages.admin = admin;
      const page = admin.page;

      await page.fill('#account-name', '王系统');
      await page.fill('#account-password', otp);
      await page.click('#account-form button[type="submit"]');
      await page.waitForSelector('#enrol-panel:not([hidden])', { timeout: STEP_TIMEOUT_MS });
      const qr = await page.getAttribute('#enrol-qr', 'src');
      assert.ok(qr.startsWith('data:image/svg+xml'), qr.slice(0, 40));
      const secret = (await page.textContent('#enrol-secret')).trim();
      assert.match(secret, /^[A-Z2-7]{32}$/);

      await page.fill('#enrol-code', totp(secret));
      await page.fill('#enrol-password', 'Correct horse 42 staple');
      await page.click('#enrol-form button[type="submit"]');
      await page.waitForFunction(() => window.ketangAdmin?.signedIn === true, null, { timeout: STEP_TIMEOUT_MS });
      assert.equal(await page.evaluate(() => sessionStorage.getItem('ketang.adminKey')), null, 'no key stored');
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === 'ketang_admin');
      assert.ok(session?.httpOnly, JSON.stringify(cookies));
      assert.equal(session.sameSite, 'Strict');

      // A write through the session (the page sends the CSRF token).
      await page.click('.tab[data-tab="schools"]');
      await page.fill('#schools-form [name="name"]', '实验小学');
      await page.fill('#schools-form [name="district"]', '城关区');
      await page.selectOption('#schools-form [name="kind"]', 'central');
      await page.click('#schools-form [data-action="submit"]');
      await page.waitForFunction(() => document.querySelectorAll('#view-schools tbody tr').length >= 1, null, { timeout: STEP_TIMEOUT_MS });

      // Sign out: the session is over on the server too.
      const value = session.value;
      await page.click('#sign-out');
      await page.waitForFunction(() => window.ketangAdmin?.signedIn === false, null, { timeout: STEP_TIMEOUT_MS });
      const res = await rig.server.fetch('/api/v1/schools', { headers: { Cookie: `ketang_admin=${value}` } });
      assert.equal(res.status, 401);

      // An audit admin lands on the audit log, sees the system admin's write and checks the
      // chain; the timetable's tabs are not offered.
      const auditOtp = await rig.server.createAdminUser('审计员', 'audit');
      await page.fill('#account-name', '审计员');
      await page.fill('#account-password', auditOtp);
      await page.click('#account-form button[type="submit"]');
      await page.waitForSelector('#enrol-panel:not([hidden])', { timeout: STEP_TIMEOUT_MS });
      const auditSecret = (await page.textContent('#enrol-secret')).trim();
      await page.fill('#enrol-code', totp(auditSecret));
      await page.fill('#enrol-password', 'Audit trail 2026 ok');
      await page.click('#enrol-form button[type="submit"]');
      await page.waitForFunction(() => window.ketangAdmin?.current === 'audit', null, { timeout: STEP_TIMEOUT_MS });
      assert.equal(await page.isVisible('.tab[data-tab="schools"]'), false);
      await page.waitForSelector('#view-audit tr[data-audit]', { timeout: STEP_TIMEOUT_MS });
      const actions = await page.$$eval('#view-audit tbody tr td:nth-child(3)', (tds) => tds.map((td) => td.textContent));
      assert.ok(actions.includes('school.create') && actions.includes('login.ok'), actions.join(','));
      await page.click('#view-audit [data-i18n="auditVerify"], #view-audit button.primary');
      await page.waitForFunction(() => document.getElementById('audit-verify')?.className === 'ok', null, { timeout: STEP_TIMEOUT_MS });
    } catch (err) {
      rig.failed = true;
      const seen = {};
      for (const [name, p] of Object.entries(pages)) seen[name] = await describePage(p);
      console.error(`--- pages ---\n${JSON.stringify(seen, null, 2)}`);
      throw err;
    }
  });
});
