// The jobs section: the tenant's storage-side jobs (POST /v1/jobs) in a table, refreshed while
// any of them runs, and a job's page (#/jobs/{id}) under it: one row per instance with the node
// that ran it, the validator's verdict, how it ended and its accounting; the result; Cancel
// while the job runs. Everything the server says lands in text nodes (el() and textContent),
// never in markup: job arguments and results are arbitrary bytes.

import { api, ApiError } from './api.js';
import { el, fmtBytes, fmtSeconds, fmtTime } from './format.js';
import { nodeHue } from './farm.js';

const $ = (id) => document.getElementById(id);
const LIST_FAST_MS = 2000;    // the list while a job runs
const LIST_SLOW_MS = 5000;    // otherwise: jobs submitted elsewhere (CLI, API) still show up
const JOB_POLL_MS = 1000;     // an open running job
const RESULT_SHOWN = 4096;    // characters of a result shown before "Show all"

function num(v) { return typeof v === 'number' && Number.isFinite(v) ? v : null; }

// The server gives Unix seconds.
function fmtUnix(t) {
  return num(t) !== null && t > 0 ? fmtTime(new Date(t * 1000).toISOString()) : '';
}

// A shell-like rendering of a stage: program then arguments, quoted when they need it.
function quoteArg(a) {
  const s = String(a);
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

export function commandLine(stage) {
  if (!stage || typeof stage !== 'object') return '';
  const args = Array.isArray(stage.args) ? stage.args.map(quoteArg) : [];
  return [String(stage.program ?? '?'), ...args].join(' ');
}

function statusBadge(status) {
  return el('span', { class: 'badge', dataset: { status: status || '' } }, status || '?');
}

function errorText(err) {
  if (!err || typeof err !== 'object') return '';
  const message = err.message ? String(err.message) : '';
  const code = err.code ? String(err.code) : '';
  return message ? `${message}${code ? ` (${code})` : ''}` : (code || 'no reason given');
}

// How an instance ended: stopped by the runner (timeout, memory, cancel), a signal, or its
// exit code.
function endText(i) {
  if (i.stopped_by) return `stopped: ${i.stopped_by}`;
  if (num(i.signal) && i.signal > 0) return `signal ${i.signal}`;
  if (num(i.exit_code) !== null) return `exit ${i.exit_code}`;
  return '–';
}

function inputText(i) {
  const input = i.input ? String(i.input) : (i.stage === 'reduce' ? 'map outputs' : '–');
  const p = i.part;
  if (!p || num(p.length) === null) return input;
  return `${input} · ${fmtBytes(p.length)} at ${fmtBytes(num(p.offset) ?? 0)}`;
}

export class JobsView {
  constructor({ onAuthError }) {
    this.onAuthError = onAuthError;
    this.jobs = [];
    this.currentId = null;
    this.current = null;
    this.listTimer = null;
    this.listGeneration = 0;
    this.jobTimer = null;
    this.jobGeneration = 0;
    this.showWholeResult = false;
    $('jobs-refresh').addEventListener('click', () => this.refreshList());
    $('j-cancel').addEventListener('click', () => this.cancel());
    $('j-result-more').addEventListener('click', () => {
      this.showWholeResult = !this.showWholeResult;
      if (this.current) this.renderResult(this.current);
    });
  }

  // --- the list --------------------------------------------------------------------------

  // Polls the list: every LIST_FAST_MS while a job runs, slowly otherwise.
  start() {
    this.stopList();
    const generation = this.listGeneration;
    const tick = async () => {
      if (!document.hidden) await this.refreshList();
      if (generation !== this.listGeneration) return;
      const running = this.jobs.some((j) => j.status === 'running');
      this.listTimer = setTimeout(tick, running ? LIST_FAST_MS : LIST_SLOW_MS);
    };
    tick();
  }

  stopList() {
    this.listGeneration++;
    clearTimeout(this.listTimer);
  }

  stop() {
    this.stopList();
    this.jobGeneration++;
    clearTimeout(this.jobTimer);
  }

  async refreshList() {
    try {
      this.jobs = await api.listJobs();
      $('jobs-error').hidden = true;
      this.renderList();
    } catch (e) {
      if (this.onAuthError(e)) return;
      $('jobs-error').textContent = `Cannot list jobs: ${e.message}`;
      $('jobs-error').hidden = false;
    }
  }

  renderList() {
    const rows = this.jobs.map((j) => {
      const request = j.request && typeof j.request === 'object' ? j.request : {};
      const href = `#/jobs/${encodeURIComponent(j.id)}`;
      const done = num(j.instances_done) ?? 0;
      const total = num(j.instances_total) ?? 0;
      const error = j.status === 'failed' ? errorText(j.error) : '';
      const mapCmd = commandLine(request.map);
      const reduceCmd = request.reduce ? commandLine(request.reduce) : '';
      const row = el('tr', {
        class: j.id === this.currentId ? 'job-row active' : 'job-row',
        dataset: { id: j.id, status: j.status },
      },
      el('td', { class: 'mono', dataset: { col: 'id' } }, el('a', { href }, j.id)),
      el('td', { dataset: { col: 'program' } },
        el('div', { class: 'cmd', title: mapCmd }, mapCmd),
        reduceCmd ? el('div', { class: 'cmd muted', title: reduceCmd }, `reduce: ${reduceCmd}`) : null),
      el('td', { dataset: { col: 'status' } }, statusBadge(j.status),
        error ? el('div', { class: 'job-error', title: error }, error) : null),
      el('td', { class: 'num', dataset: { col: 'instances' } }, `${done}/${total}`,
        j.status === 'running' && total
          ? el('div', { class: 'bar bar-thin' },
            el('div', { class: 'bar-fill', style: `width:${((done / total) * 100).toFixed(1)}%` }))
          : null),
      el('td', { class: 'when', dataset: { col: 'created' } }, fmtUnix(j.created)),
      el('td', { class: 'when', dataset: { col: 'ended' } }, fmtUnix(j.ended) || '–'));
      // The whole row opens the job; the link inside stays the keyboard's way in.
      row.addEventListener('click', (e) => {
        if (!e.target.closest('a')) location.hash = href;
      });
      return row;
    });
    $('jobs').replaceChildren(...rows);
    $('jobs-table').hidden = this.jobs.length === 0;
    $('jobs-empty').hidden = this.jobs.length > 0;
  }

  // --- a job's page ------------------------------------------------------------------------

  open(id) {
    if (this.currentId !== id) {
      this.currentId = id;
      this.current = null;
      this.showWholeResult = false;
      $('j-title').textContent = id;
      $('j-meta').textContent = 'loading…';
      $('j-status').textContent = '';
      $('j-status').dataset.status = '';
      $('j-cancel').hidden = true;
      $('j-error').hidden = true;
      $('j-load-error').hidden = true;
      $('j-summary').replaceChildren();
      $('j-instances').replaceChildren();
      $('j-result-block').hidden = true;
    }
    $('job-page').hidden = false;
    this.renderList();
    this.jobGeneration++;
    this.poll(id, this.jobGeneration);
  }

  close() {
    this.jobGeneration++;
    clearTimeout(this.jobTimer);
    this.currentId = null;
    this.current = null;
    $('job-page').hidden = true;
    this.renderList();
  }

  poll(id, generation) {
    clearTimeout(this.jobTimer);
    api.getJob(id).then((j) => {
      if (generation !== this.jobGeneration) return;
      $('j-load-error').hidden = true;
      this.render(j);
      this.syncListEntry(j);
      // A finished job no longer changes.
      if (j.status === 'running') this.jobTimer = setTimeout(() => this.poll(id, generation), JOB_POLL_MS);
    }, (e) => {
      if (generation !== this.jobGeneration) return;
      if (this.onAuthError(e)) return;
      if (e instanceof ApiError && e.status === 404) {
        $('j-meta').textContent = '';
        $('j-load-error').textContent = `There is no job ${id} (or it belongs to another tenant).`;
        $('j-load-error').hidden = false;
        return;
      }
      $('j-load-error').textContent = `Cannot load the job: ${e.message}`;
      $('j-load-error').hidden = false;
      this.jobTimer = setTimeout(() => this.poll(id, generation), 2 * JOB_POLL_MS);
    });
  }

  // Keeps the list's entry in step with the open job (status, instances done).
  syncListEntry(j) {
    const i = this.jobs.findIndex((x) => x.id === j.id);
    const instances = Array.isArray(j.instances) ? j.instances : [];
    const summary = {
      ...j,
      instances: undefined,
      instances_done: instances.filter((x) => x.state === 'done').length,
      instances_total: instances.length,
    };
    if (i < 0) {
      this.refreshList();
      return;
    }
    const old = this.jobs[i];
    if (old.status !== summary.status || old.instances_done !== summary.instances_done
        || old.instances_total !== summary.instances_total) {
      this.jobs[i] = summary;
      this.renderList();
    }
  }

  render(j) {
    this.current = j;
    const request = j.request && typeof j.request === 'object' ? j.request : {};
    $('job-page').dataset.status = j.status;
    $('j-title').textContent = `Job ${j.id}`;
    const meta = [];
    if (request.map) meta.push(`map: ${commandLine(request.map)}`);
    if (request.reduce) meta.push(`reduce: ${commandLine(request.reduce)}`);
    if (j.created) meta.push(`created ${fmtUnix(j.created)}`);
    if (j.ended) meta.push(`ended ${fmtUnix(j.ended)} (${Math.max(0, j.ended - j.created)} s)`);
    $('j-meta').textContent = meta.join(' · ');
    $('j-status').textContent = j.status || '?';
    $('j-status').dataset.status = j.status || '';
    $('j-cancel').hidden = j.status !== 'running';

    const failed = j.status === 'failed';
    $('j-error').hidden = !failed;
    if (failed) $('j-error-text').textContent = errorText(j.error);

    const instances = Array.isArray(j.instances) ? j.instances : [];
    this.renderSummary(instances);
    const rows = [];
    for (const i of instances) {
      const node = i.node ? String(i.node) : '';
      const nodeCell = el('td', { class: 'mono', dataset: { col: 'node' }, title: node },
        node ? el('span', { class: 'node-dot', style: `--node-hue:${nodeHue(node)}` }) : null,
        node || (i.state === 'queued' ? 'no node yet' : '–'));
      rows.push(el('tr', {
        class: 'inst-row',
        dataset: { name: String(i.name ?? ''), stage: String(i.stage ?? ''), state: String(i.state ?? '') },
      },
      el('td', { class: 'mono', dataset: { col: 'name' } }, String(i.name ?? '')),
      el('td', { dataset: { col: 'stage' } }, String(i.stage ?? '')),
      el('td', { class: 'mono', dataset: { col: 'input' } }, inputText(i)),
      el('td', { dataset: { col: 'state' } }, statusBadge(i.state)),
      nodeCell,
      el('td', { dataset: { col: 'verdict' } }, i.verdict ? String(i.verdict) : '–'),
      el('td', { class: 'mono', dataset: { col: 'exit' } }, endText(i)),
      el('td', { class: 'num', dataset: { col: 'wall' } }, fmtSeconds(num(i.wall_seconds), 2)),
      el('td', { class: 'num', dataset: { col: 'cpu' } }, fmtSeconds(num(i.cpu_seconds), 2)),
      el('td', { class: 'num', dataset: { col: 'bytes-in' } }, fmtBytes(num(i.bytes_in))),
      el('td', { class: 'num', dataset: { col: 'bytes-out' } }, fmtBytes(num(i.bytes_out))),
      el('td', { class: 'num', dataset: { col: 'network' } }, fmtBytes(num(i.network_bytes))),
      el('td', { class: 'num', dataset: { col: 'attempts' } }, String(i.attempts ?? '–'))));
      if (i.error) {
        rows.push(el('tr', { class: 'inst-error' },
          el('td', { colspan: '13' }, `${String(i.name ?? '')}: ${errorText(i.error)}`)));
      }
    }
    $('j-instances').replaceChildren(...rows);
    $('j-instances-empty').hidden = instances.length > 0;
    this.renderResult(j);
  }

  renderSummary(instances) {
    const counts = new Map();
    const nodes = new Map();
    let cpu = 0;
    let bytesIn = 0;
    let network = 0;
    for (const i of instances) {
      counts.set(i.state, (counts.get(i.state) || 0) + 1);
      if (i.node) nodes.set(i.node, (nodes.get(i.node) || 0) + 1);
      cpu += num(i.cpu_seconds) ?? 0;
      bytesIn += num(i.bytes_in) ?? 0;
      network += num(i.network_bytes) ?? 0;
    }
    const items = [
      ['instances', `${counts.get('done') || 0}/${instances.length} done`],
      ['running', String(counts.get('running') || 0)],
      ['failed', String(counts.get('failed') || 0)],
      counts.get('cancelled') ? ['cancelled', String(counts.get('cancelled'))] : null,
      ['nodes', nodes.size ? [...nodes].map(([n, k]) => `${n} (${k})`).join(', ') : '–'],
      ['CPU', cpu ? fmtSeconds(cpu, 2) : '–'],
      ['read', fmtBytes(bytesIn)],
      ['network', fmtBytes(network)],
    ];
    $('j-summary').replaceChildren(...items.filter(Boolean).map(([k, v]) =>
      el('span', { class: 'stat' }, el('span', { class: 'stat-key' }, k), el('span', { class: 'stat-value' }, v))));
  }

  // The result is the reduce's stdout (or the map outputs): shown as text, the first
  // RESULT_SHOWN characters unless asked for all of it.
  renderResult(j) {
    const has = j.status === 'done' && typeof j.result === 'string';
    $('j-result-block').hidden = !has;
    if (!has) return;
    const result = j.result;
    const long = result.length > RESULT_SHOWN;
    const text = long && !this.showWholeResult ? `${result.slice(0, RESULT_SHOWN)}\n…` : result;
    const pre = $('j-result');
    if (pre.textContent !== text) pre.textContent = text;
    pre.dataset.full = String(!long || this.showWholeResult);
    const info = [`${fmtBytes(new Blob([result]).size)}`];
    if (long && !this.showWholeResult) info.push(`first ${RESULT_SHOWN} of ${result.length} characters shown`);
    if (j.result_truncated) info.push('the server kept only the first 1 MiB');
    $('j-result-info').textContent = info.join(' · ');
    $('j-result-more').hidden = !long;
    $('j-result-more').textContent = this.showWholeResult ? 'Show less' : 'Show all';
  }

  async cancel() {
    const j = this.current;
    if (!j || j.status !== 'running') return;
    if (!confirm(`Cancel job ${j.id}? Its running instances are stopped.`)) return;
    const button = $('j-cancel');
    button.disabled = true;
    try {
      await api.cancelJob(j.id);
      this.jobGeneration++;
      this.poll(j.id, this.jobGeneration);
    } catch (e) {
      if (this.onAuthError(e)) return;
      $('j-load-error').textContent = `Cancel failed: ${e.message}`;
      $('j-load-error').hidden = false;
    } finally {
      button.disabled = false;
    }
  }
}
