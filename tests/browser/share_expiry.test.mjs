// Browser test: a shared signed playback link plays in Chromium with no API token, and stops
// playing once it has expired.
//
// Starts a real `zerofarm serve`, uploads a clip over the API (with the token, from Node),
// waits for ready, asks for a signed playback link that lives EXPIRES_IN seconds, then opens the
// link's share page (embed.html?v=...) in a fresh browser context that never saw the token:
// playback advances, no request carries the token. After the expiry the same page, reloaded,
// refuses to play (HTTP 403, "expired" shown) and a segment request answers 403.
//
// Environment and exit status: harness.mjs.

import fs from 'node:fs';
import path from 'node:path';

import { artifactDir, check, clip, log, readyTimeoutMs, TestFailure, waitFor, runBrowserTest } from './harness.mjs';

const EXPIRES_IN = 25;  // seconds the shared link lives

async function run(serve, browser) {
  const auth = { Authorization: `Bearer ${serve.token}` };
  // 1. Upload over the API (signed is the default policy) and wait for ready.
  const up = await fetch(`${serve.base}/v1/videos?ladder=360p&filename=share.mp4`, {
    method: 'POST', headers: { ...auth, 'Content-Type': 'video/mp4' }, body: fs.readFileSync(clip),
  });
  check(up.status === 201, `upload answered ${up.status}`);
  const { id } = await up.json();
  const video = await waitFor('the video to be ready', async () => {
    const v = await (await fetch(`${serve.base}/v1/videos/${id}`, { headers: auth })).json();
    if (v.status === 'failed') throw new TestFailure(`the video failed: ${JSON.stringify(v.error)}`);
    return v.status === 'ready' ? v : null;
  }, readyTimeoutMs, 500);
  check(video.playback_policy === 'signed', `policy is ${video.playback_policy}, not signed`);

  // 2. A link that lives EXPIRES_IN seconds.
  const shortLived = await (await fetch(`${serve.base}/v1/videos/${id}?expires_in=${EXPIRES_IN}`,
    { headers: auth })).json();
  const { share, id: playbackId, hls } = shortLived.playback;
  const expires = Number(playbackId.split('.')[2]) * 1000;
  check(share.startsWith(`${serve.base}/embed.html?v=`), `share link ${share}`);
  check(!share.includes(serve.token) && !hls.includes(serve.token), 'the link carries the API token');
  log(`shared link ${share.replace(/[0-9a-f]{64}/, '…')} (expires in ${EXPIRES_IN} s)`);

  // 3. A fresh context: no localStorage, no token. The page plays.
  const context = await browser.newContext({ viewport: { width: 800, height: 450 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const leaks = [];
  const segmentUrls = [];
  page.on('request', (r) => {
    const h = r.headers();
    if (h.authorization || r.url().includes(serve.token)) leaks.push(r.url());
    if (/\.ts$/.test(r.url())) segmentUrls.push(r.url());
  });
  await page.goto(share);
  await page.evaluate(() => document.querySelector('#embed-player').play());
  await waitFor('playback to advance past 1 s', () => page.evaluate(() =>
    document.querySelector('#embed-player').currentTime > 1.0), 60000);
  const playing = await page.evaluate(() => {
    const v = document.querySelector('#embed-player');
    return { t: v.currentTime, h: v.videoHeight, state: document.body.dataset.state };
  });
  log(`plays with no token: currentTime ${playing.t.toFixed(2)} s, ${playing.h} lines`);
  check(Date.now() < expires, 'the link expired before playback could be checked (machine too slow?)');
  check(segmentUrls.length > 0, 'no segment was fetched');
  await page.screenshot({ path: path.join(artifactDir, 'share-playing.png') });

  // 4. After the expiry: the same link no longer plays.
  const wait = expires - Date.now() + 1000;
  log(`waiting ${(wait / 1000).toFixed(1)} s for the link to expire`);
  await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  const segStatus = await page.evaluate(async (u) => (await fetch(u, { cache: 'no-store' })).status,
    segmentUrls[0]);
  check(segStatus === 403, `a segment of the expired link answered ${segStatus}`);
  log(`a segment of the expired link answers ${segStatus}; opening the link again`);
  await page.close();
  log('first page closed');
  // The same link, opened anew (a second visitor, again without any token).
  const page2 = await context.newPage();
  page2.on('pageerror', (e) => pageErrors.push(e.message));
  await page2.goto(share, { waitUntil: 'domcontentloaded' });
  log('second page loaded');
  await page2.waitForSelector('body[data-state="error"]', { timeout: 30000 });
  const message = await page2.textContent('#embed-error');
  check(/expired/.test(message), `the page says "${message}" after the expiry`);
  await new Promise((r) => setTimeout(r, 1500));
  const after = await page2.evaluate(() => {
    const v = document.querySelector('#embed-player');
    return { t: v.currentTime, buffered: v.buffered.length, readyState: v.readyState };
  });
  check(after.t === 0 && after.buffered === 0 && after.readyState === 0,
    `the expired link still loaded media (currentTime ${after.t}, ${after.buffered} buffered ranges)`);
  log(`after expiry: "${message}", nothing plays`);
  await page2.screenshot({ path: path.join(artifactDir, 'share-expired.png') });

  check(leaks.length === 0, `requests carried the API token: ${leaks.join(', ')}`);
  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  await context.close();
}

await runBrowserTest('share', run);
