// Browser test: the page lists the tenant's storage-side jobs and shows a job's instances, its
// result, and cancels a running job.
//
// Starts a real `zerofarm serve`, stores Debian's static busybox as the program bin/busybox and
// a ~300 KB log over the API (with the token, from Node), submits a grep job split into 64 KB
// parts (map `grep -c ERROR`, reduce `awk` summing the counts) and checks in Chromium: the job
// appears in the list and reaches done there, its page has one row per instance that names its
// node, the verdict "accepted" and an exit code, and the result equals the number of ERROR
// lines counted here. A pattern with markup in the job's arguments shows as text, never as
// markup, and a long result (`cat` of the whole log) shows its head until "Show all" is
// pressed. Then a `busybox sleep 30` job is cancelled with the page's button: it ends failed,
// cancelled. Skipped (77) without /bin/busybox (busybox-static).
//
// Environment and exit status: harness.mjs.

import fs from 'node:fs';
import path from 'node:path';

import { artifactDir, check, log, TestFailure, waitFor, runBrowserTest } from './harness.mjs';

const BUSYBOX = '/bin/busybox';
if (!fs.existsSync(BUSYBOX)) {
  console.log(`SKIP: no ${BUSYBOX} (apt-get install busybox-static, or ./scripts/setup.sh)`);
  process.exit(77);
}

// A pattern no line holds, with markup in it: the page must show it as text.
const MARKUP = '<img src=x onerror="window.zfInjected=1">';

// Deterministic log lines of varied length (some cross the 64 KB part boundaries).
function logText(bytes) {
  const levels = ['INFO', 'DEBUG', 'ERROR', 'WARN', 'INFO', 'INFO', 'ERROR'];
  let x = 88172645;
  let text = '';
  for (let i = 0; text.length < bytes; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const r = x >>> 8;
    text += `2026-12-07T10:${String(i % 60).padStart(2, '0')} ${levels[r % 7]} request ${r % 100000} ${'x'.repeat(r % 200)}\n`;
    // Markup in the data: a result that holds it must show it as text.
    if (i === 100) text += '<b>bold</b> <script>window.zfInjected=2</script>\n';
  }
  return text;
}

async function run(serve, browser) {
  const auth = { Authorization: `Bearer ${serve.token}` };
  const put = async (name, body) => {
    const r = await fetch(`${serve.base}/v1/objects/${name}`, { method: 'PUT', headers: auth, body });
    const text = await r.text();
    check(r.status === 201, `PUT ${name} answered ${r.status}: ${text}`);
    return JSON.parse(text);
  };
  const submit = async (job) => {
    const r = await fetch(`${serve.base}/v1/jobs`, {
      method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify(job),
    });
    const text = await r.text();
    check(r.status === 201, `POST /v1/jobs answered ${r.status}: ${text}`);
    return JSON.parse(text).id;
  };

  // 1. The program and the data, over the API.
  const program = await put('bin/busybox', fs.readFileSync(BUSYBOX));
  check(program.program && program.program.verdict === 'accepted',
    `busybox was not accepted as a program: ${JSON.stringify(program.program)}`);
  const text = logText(300 * 1024);
  const errors = text.split('\n').filter((l) => l.includes('ERROR')).length;
  await put('logs/app.log', text);
  await put('in/x', 'x\n');
  log(`stored bin/busybox and logs/app.log (${text.length} bytes, ${errors} ERROR lines)`);

  // 2. The grep job, submitted before the page opens: the list shows it from the start.
  const grepId = await submit({
    map: {
      program: 'bin/busybox', args: ['grep', '-c', '-e', 'ERROR', '-e', MARKUP],
      ok_exit_codes: [0, 1],  // grep -c exits 1 on a part without a match
      input: { container: 'logs' },
    },
    reduce: { program: 'bin/busybox', args: ['awk', '{s+=$1} END {print s}'] },
    split: { bytes: '64K' },
    limits: { memory: '128M', timeout: '60s' },
  });
  log(`submitted grep job ${grepId}`);

  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(`${serve.base}/#token=${serve.token}`);
  await page.waitForSelector('#app:not([hidden])');
  await page.click('#nav-jobs');

  // 3. The job is listed and reaches done in the list.
  const row = `#jobs tr[data-id="${grepId}"]`;
  await page.waitForSelector(row, { timeout: 30000 });
  await waitFor('the grep job to be done in the list', async () => {
    const status = await page.getAttribute(row, 'data-status');
    if (status === 'failed') {
      throw new TestFailure(`the grep job failed: ${await page.textContent(`${row} [data-col="status"]`)}`);
    }
    return status === 'done';
  }, 120000, 250);
  const listed = await page.$eval(row, (r) => ({
    program: r.querySelector('[data-col="program"]').textContent,
    instances: r.querySelector('[data-col="instances"]').textContent,
    ended: r.querySelector('[data-col="ended"]').textContent,
  }));
  log(`listed: ${JSON.stringify(listed)}`);
  check(listed.program.includes('bin/busybox grep -c') && listed.program.includes('reduce: bin/busybox awk'),
    `the list shows the program as "${listed.program}"`);
  check(listed.program.includes(MARKUP), 'the markup in the arguments is not shown as text');
  const [doneCount, total] = listed.instances.split('/').map(Number);
  check(total >= 4 && doneCount === total, `the list shows ${listed.instances} instances done`);
  check(listed.ended && listed.ended !== '–', 'the list shows no end time for a finished job');

  // 4. Its page: every instance ran on a node, was accepted, and exited as grep and awk do.
  await page.click(`${row} [data-col="program"]`);
  await page.waitForSelector('#job-page[data-status="done"]', { timeout: 30000 });
  check(page.url().endsWith(`#/jobs/${grepId}`), `the row opened ${page.url()}`);
  const rows = await page.$$eval('#j-instances tr.inst-row', (trs) => trs.map((r) => {
    const cell = (c) => r.querySelector(`[data-col="${c}"]`).textContent;
    return {
      name: cell('name'), stage: r.dataset.stage, state: r.dataset.state, input: cell('input'),
      node: cell('node'), verdict: cell('verdict'), exit: cell('exit'), wall: cell('wall'),
      cpu: cell('cpu'), bytesIn: cell('bytes-in'), attempts: cell('attempts'),
    };
  }));
  check(rows.length === total, `the job page shows ${rows.length} instances, the list ${total}`);
  for (const r of rows) {
    check(r.state === 'done', `instance ${r.name} is ${r.state}`);
    check(r.node && r.node !== '–' && r.node !== 'no node yet', `instance ${r.name} names no node`);
    check(r.verdict === 'accepted', `instance ${r.name} has verdict "${r.verdict}"`);
    check(r.stage === 'map' ? /^exit [01]$/.test(r.exit) : r.exit === 'exit 0',
      `instance ${r.name} (${r.stage}) ended "${r.exit}"`);
    check(/^\d+\.\d\d s$/.test(r.wall), `instance ${r.name} shows wall time "${r.wall}"`);
    check(r.attempts === '1', `instance ${r.name} shows ${r.attempts} attempts`);
    check(!/null|undefined|NaN/.test(Object.values(r).join(' ')), `instance ${r.name} shows a missing value`);
  }
  check(rows.filter((r) => r.stage === 'map').length >= 4, 'the log was not split into several parts');
  check(rows.filter((r) => r.stage === 'map').every((r) => r.input.startsWith('logs/app.log · ')),
    `map inputs: ${rows.map((r) => r.input).join(', ')}`);
  check(rows[rows.length - 1].stage === 'reduce', 'the last instance is not the reduce');
  log(`instances: ${rows.map((r) => `${r.name}@${r.node} ${r.verdict} ${r.exit} ${r.wall}`).join(', ')}`);
  const result = await page.textContent('#j-result');
  check(result.trim() === String(errors), `the page shows the result "${result}", expected ${errors}`);
  check(await page.isHidden('#j-cancel'), 'a finished job offers Cancel');
  log(`result ${result.trim()} = ${errors} ERROR lines`);
  await page.screenshot({ path: path.join(artifactDir, 'jobs-done.png'), fullPage: true });

  // 5. A long result: its head is shown until "Show all"; markup in it stays text.
  const catId = await submit({
    map: { program: 'bin/busybox', args: ['cat'], input: { container: 'logs' } },
    split: { bytes: '64K' },
  });
  await page.waitForSelector(`#jobs tr[data-id="${catId}"]`, { timeout: 30000 });
  await page.click(`#jobs tr[data-id="${catId}"] a`);
  await page.waitForSelector('#job-page[data-status="done"] #j-result-more:not([hidden])', { timeout: 60000 });
  const head = await page.textContent('#j-result');
  check(head.length < 5000 && text.startsWith(head.replace(/\n…$/, '')),
    `the long result shows ${head.length} characters, not its head`);
  log(`long result: "${await page.textContent('#j-result-info')}"`);
  await page.click('#j-result-more');
  const whole = await page.textContent('#j-result');
  check(whole === text, `"Show all" shows ${whole.length} characters of ${text.length}`);
  check(await page.$('#j-result b, #j-result script') === null, 'markup in a result became elements');

  // 6. A job that sleeps, cancelled from the page. The list finds it on its own.
  const sleepId = await submit({
    map: { program: 'bin/busybox', args: ['sleep', '30'], input: { container: 'in' } },
  });
  log(`submitted sleep job ${sleepId}`);
  const sleepRow = `#jobs tr[data-id="${sleepId}"]`;
  await page.waitForSelector(sleepRow, { timeout: 30000 });
  await page.click(`${sleepRow} a`);
  await page.waitForSelector('#job-page[data-status="running"] #j-cancel:not([hidden])', { timeout: 10000 });
  await page.waitForSelector('#j-instances tr.inst-row[data-state="running"]', { timeout: 30000 });
  await page.screenshot({ path: path.join(artifactDir, 'jobs-running.png'), fullPage: true });
  page.once('dialog', (d) => d.accept());
  const clicked = Date.now();
  await page.click('#j-cancel');
  await page.waitForSelector('#job-page[data-status="failed"]', { timeout: 20000 });
  log(`cancelled after ${((Date.now() - clicked) / 1000).toFixed(1)} s`);
  const errorText = await page.textContent('#j-error-text');
  check(/cancel/i.test(errorText), `the cancelled job says "${errorText}"`);
  const inst = await page.$eval('#j-instances tr.inst-row', (r) => ({
    state: r.dataset.state, exit: r.querySelector('[data-col="exit"]').textContent,
  }));
  check(inst.state !== 'running' && inst.state !== 'done',
    `the cancelled job's instance is ${inst.state} (${inst.exit})`);
  check(await page.isHidden('#j-cancel'), 'the cancelled job still offers Cancel');
  await waitFor('the list to show the job failed', async () =>
    (await page.getAttribute(sleepRow, 'data-status')) === 'failed', 15000);
  const listedError = await page.textContent(`${sleepRow} [data-col="status"]`);
  check(/cancel/i.test(listedError), `the list says "${listedError}" for the cancelled job`);
  log(`cancelled job: "${errorText}", instance ${inst.state} (${inst.exit})`);
  await page.screenshot({ path: path.join(artifactDir, 'jobs-cancelled.png'), fullPage: true });

  // The server's strings stayed text.
  check(await page.evaluate(() => window.zfInjected === undefined), 'markup from a job ran in the page');
  check(await page.$('#jobs img, #job-page img') === null, 'markup from a job became elements');
  check(pageErrors.length === 0, `the page threw: ${pageErrors.join('; ')}`);
  await context.close();
}

await runBrowserTest('jobs', run);
