// The farm view: one cell per chunk task, coloured by state, with the node that ran it and
// its timing; details in a tooltip. Cells are keyed by chunk index and updated in place on
// every poll, so hovering and animations survive the 1 s refresh.

import { el, fmtSeconds } from './format.js';

const STATES = ['queued', 'running', 'done', 'failed'];

// A stable hue per node name, shown as a stripe: where the work went at a glance.
export function nodeHue(name) {
  let h = 2166136261;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619);
  return (h >>> 0) % 360;
}

function num(v) { return typeof v === 'number' && Number.isFinite(v) ? v : null; }

export class FarmView {
  constructor(grid, summary, empty, tooltip) {
    this.grid = grid;
    this.summary = summary;
    this.empty = empty;
    this.tooltip = tooltip;
    this.cells = new Map();        // chunk index -> {node: HTMLElement, parts}
    this.runningSince = new Map(); // chunk index -> ms timestamp when first seen running
    this.jobEpoch = null;          // performance.now() at the job's time 0 (see jobClock)
    this.videoId = null;
    this.installTooltip();
  }

  reset(videoId) {
    this.videoId = videoId;
    this.cells.clear();
    this.runningSince.clear();
    this.jobEpoch = null;
    this.grid.replaceChildren();
    this.summary.replaceChildren();
    this.hideTooltip();
  }

  render(video) {
    // Video segments by index, then the audio track (its own task, keyed -1 here).
    const chunks = Array.isArray(video.chunks) ? [...video.chunks] : [];
    chunks.sort((a, b) => a.index - b.index);
    if (video.audio) chunks.push({ ...video.audio, index: -1 });
    this.empty.hidden = chunks.length > 0;
    const seen = new Set();
    const now = performance.now();
    this.jobClock(chunks, now);
    for (const chunk of chunks) {
      seen.add(chunk.index);
      let cell = this.cells.get(chunk.index);
      if (!cell) {
        cell = this.makeCell(chunk.index);
        this.cells.set(chunk.index, cell);
      }
      if (chunk.state === 'running') {
        if (!this.runningSince.has(chunk.index)) this.runningSince.set(chunk.index, now);
      } else {
        this.runningSince.delete(chunk.index);
      }
      this.updateCell(cell, chunk, now);
    }
    for (const [index, cell] of this.cells) {
      if (!seen.has(index)) { cell.node.remove(); this.cells.delete(index); }
    }
    // Keep DOM order equal to chunk order (new cells may arrive out of order).
    let prev = null;
    for (const chunk of chunks) {
      const node = this.cells.get(chunk.index).node;
      const expected = prev ? prev.nextSibling : this.grid.firstChild;
      if (node !== expected) this.grid.insertBefore(node, expected);
      prev = node;
    }
    this.renderSummary(video, chunks);
  }

  // queued_at/started_at count seconds from the job's start on the server's clock. The
  // latest instant the data proves has passed (a start, or a start plus its wall time) gives
  // a lower bound of the job's time now; the earliest epoch seen so far is the best estimate,
  // and running tasks' elapsed time follows from it without comparing clocks.
  jobClock(chunks, now) {
    let proven = null;
    for (const c of chunks) {
      const started = num(c.started_at);
      if (started === null) continue;
      const end = started + (c.state === 'done' || c.state === 'failed' ? (num(c.wall_seconds) ?? 0) : 0);
      proven = Math.max(proven ?? 0, end);
    }
    if (proven === null) return;
    const epoch = now - proven * 1000;
    if (this.jobEpoch === null || epoch < this.jobEpoch) this.jobEpoch = epoch;
  }

  runningSeconds(chunk, now) {
    const wall = num(chunk.wall_seconds);
    if (wall) return wall;
    const started = num(chunk.started_at);
    if (this.jobEpoch !== null && started !== null) return Math.max(0, (now - this.jobEpoch) / 1000 - started);
    return (now - (this.runningSince.get(chunk.index) ?? now)) / 1000;
  }

  makeCell(index) {
    const label = el('span', { class: 'cell-index' }, index === -1 ? 'audio' : `#${index}`);
    const node = el('span', { class: 'cell-node' });
    const time = el('span', { class: 'cell-time' });
    const span = el('span', { class: 'cell-span' });
    const cell = el('div', {
      class: index === -1 ? 'cell cell-audio' : 'cell',
      role: 'listitem',
      tabindex: '0',
      dataset: { index: String(index) },
    }, el('div', { class: 'cell-head' }, label, span), node, time);
    return { node: cell, parts: { label, node, time, span } };
  }

  updateCell(cell, chunk, now) {
    const { parts } = cell;
    const state = STATES.includes(chunk.state) ? chunk.state : 'queued';
    cell.node.dataset.state = state;
    cell.node.dataset.node = chunk.node || '';
    if (chunk.node) cell.node.style.setProperty('--node-hue', String(nodeHue(chunk.node)));
    else cell.node.style.removeProperty('--node-hue');

    parts.node.textContent = chunk.node || (state === 'queued' ? 'no node yet' : '–');
    parts.node.title = chunk.node || '';

    const start = num(chunk.start_seconds);
    const len = num(chunk.media_seconds);
    parts.span.textContent = chunk.index === -1 ? 'whole track'
      : start !== null ? `${start.toFixed(1)}–${(start + (len ?? 0)).toFixed(1)} s` : '';

    let time;
    if (state === 'done' || state === 'failed') {
      time = num(chunk.wall_seconds) !== null ? fmtSeconds(chunk.wall_seconds) : state;
      if (state === 'failed') time = `failed${num(chunk.wall_seconds) !== null ? ` · ${fmtSeconds(chunk.wall_seconds)}` : ''}`;
    } else if (state === 'running') {
      time = `${fmtSeconds(this.runningSeconds(chunk, now))} …`;
    } else {
      time = 'queued';
    }
    if ((chunk.attempts ?? 1) > 1) time += ` · try ${chunk.attempts}`;
    parts.time.textContent = time;
    cell.node.zfChunk = chunk;
    if (this.tooltipFor === cell.node) this.showTooltip(cell.node);
  }

  renderSummary(video, chunks) {
    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    const nodes = new Map();
    let cpu = 0;
    let wall = 0;
    for (const c of chunks) {
      if (c.index === -1) continue;  // the audio track is not a segment
      counts[STATES.includes(c.state) ? c.state : 'queued']++;
      if (c.node) nodes.set(c.node, (nodes.get(c.node) || 0) + 1);
      cpu += num(c.cpu_seconds) ?? 0;
      wall += num(c.wall_seconds) ?? 0;
    }
    const p = video.progress || {};
    const items = [
      ['segments', p.tasks_known != null ? `${p.tasks_done ?? counts.done}/${p.tasks_known}${p.ingest_done === false ? '+' : ''}` : String(counts.done)],
      ['audio', p.audio ?? '–'],
      ['running', String(counts.running)],
      ['failed', String(counts.failed)],
      ['nodes', nodes.size ? [...nodes].map(([n, k]) => `${n} (${k})`).join(', ') : '–'],
      ['task time', wall ? fmtSeconds(wall) : '–'],
      ['CPU', cpu ? fmtSeconds(cpu) : '–'],
    ];
    this.summary.replaceChildren(...items.map(([k, v]) =>
      el('span', { class: 'stat' }, el('span', { class: 'stat-key' }, k), el('span', { class: 'stat-value' }, v))));
  }

  // --- tooltip -------------------------------------------------------------------------
  installTooltip() {
    const show = (e) => {
      const cell = e.target.closest && e.target.closest('.cell');
      if (cell && this.grid.contains(cell)) this.showTooltip(cell);
    };
    const hide = (e) => {
      const cell = e.target.closest && e.target.closest('.cell');
      if (cell && !cell.contains(e.relatedTarget)) this.hideTooltip();
    };
    this.grid.addEventListener('mouseover', show);
    this.grid.addEventListener('focusin', show);
    this.grid.addEventListener('mouseout', hide);
    this.grid.addEventListener('focusout', hide);
    window.addEventListener('scroll', () => this.hideTooltip(), { passive: true });
  }

  showTooltip(cellNode) {
    const chunk = cellNode.zfChunk;
    if (!chunk) return;
    this.tooltipFor = cellNode;
    const rows = [
      ['state', chunk.state],
      ['node', chunk.node || '–'],
      ['attempts', chunk.attempts ?? '–'],
    ];
    if (chunk.index !== -1) {
      const start = num(chunk.start_seconds);
      const len = num(chunk.media_seconds);
      rows.push(['media', start !== null ? `${start.toFixed(2)} s + ${len !== null ? len.toFixed(2) : '?'} s` : '–']);
    }
    rows.push(
      ['queued at', num(chunk.queued_at) !== null ? `+${chunk.queued_at.toFixed(2)} s` : '–'],
      ['started at', num(chunk.started_at) !== null ? `+${chunk.started_at.toFixed(2)} s` : '–'],
      ['wall', num(chunk.wall_seconds) !== null ? fmtSeconds(chunk.wall_seconds, 2) : '–'],
      ['CPU', num(chunk.cpu_seconds) !== null ? fmtSeconds(chunk.cpu_seconds, 2) : '–'],
    );
    const title = chunk.index === -1 ? 'Audio track' : `Chunk #${chunk.index}`;
    this.tooltip.replaceChildren(...[
      el('div', { class: 'tooltip-title' }, title),
      el('dl', {}, rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))])),
      chunk.error ? el('div', { class: 'tooltip-error' }, String(chunk.error)) : null,
    ].filter(Boolean));
    this.tooltip.hidden = false;
    const r = cellNode.getBoundingClientRect();
    const t = this.tooltip.getBoundingClientRect();
    let left = r.left + r.width / 2 - t.width / 2;
    left = Math.max(8, Math.min(left, window.innerWidth - t.width - 8));
    let top = r.top - t.height - 8;
    if (top < 8) top = r.bottom + 8;
    this.tooltip.style.left = `${left + window.scrollX}px`;
    this.tooltip.style.top = `${top + window.scrollY}px`;
  }

  hideTooltip() {
    this.tooltipFor = null;
    this.tooltip.hidden = true;
  }
}
