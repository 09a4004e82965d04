// HLS playback with hls.js (vendor/hls.min.js, the global `Hls`). The master and media
// playlists use relative URLs, so the bearer token cannot ride in the query string:
// hls.js adds the Authorization header to every request itself (xhrSetup).

import { el, fmtBitrate } from './format.js';

export class Player {
  constructor({ video, select, levelLabel, errorBox }) {
    this.video = video;
    this.select = select;
    this.levelLabel = levelLabel;
    this.errorBox = errorBox;
    this.hls = null;
    this.source = null;
    select.addEventListener('change', () => {
      if (!this.hls) return;
      const level = Number(select.value);
      // currentLevel switches now (flushing the buffer); -1 gives control back to ABR.
      this.hls.currentLevel = level;
      this.updateLabel();
    });
  }

  // Loads src (the master playlist) unless the same video (`key`, default src) is already
  // playing: a signed URL that was re-signed does not restart playback; it is used on the next
  // reload (for instance when the old one expired and a request failed).
  load(src, token, poster, key = src) {
    if (poster) this.video.poster = poster;
    this.latest = src;
    if (this.key === key && this.hls) return;
    this.destroy();
    this.source = src;
    this.key = key;
    this.token = token;
    this.showError('');
    const Hls = window.Hls;
    if (!Hls || !Hls.isSupported()) {
      this.showError('This browser has no Media Source Extensions: HLS cannot play here. Use the MP4 downloads.');
      return;
    }
    const hls = new Hls({
      xhrSetup: (xhr) => { xhr.setRequestHeader('Authorization', `Bearer ${token}`); },
      fetchSetup: (context, init) => new Request(context.url,
        { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` } }),
      capLevelToPlayerSize: false,
      startLevel: -1,
      // A video still being published has an EVENT playlist (no end yet): watch it from the
      // start, not from the newest segment as for a live stream.
      startPosition: 0,
    });
    this.hls = hls;
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => this.fillLevels(data.levels));
    hls.on(Hls.Events.LEVEL_SWITCHED, () => this.updateLabel());
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        const code = data.response && data.response.code;
        this.showError(`Playback network error${code ? ` (HTTP ${code})` : ''}: ${data.details}. Retrying…`);
        setTimeout(() => {
          if (hls !== this.hls) return;
          if (this.latest && this.latest !== this.source) {
            // The link expired: go on with the newest one, from where playback was.
            const at = this.video.currentTime;
            const { latest, key, token: t } = this;
            this.destroy();
            this.load(latest, t, '', key);
            this.video.currentTime = at;
          } else {
            hls.startLoad();
          }
        }, 2000);
      } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        this.showError(`Media error: ${data.details}. Recovering…`);
        hls.recoverMediaError();
      } else {
        this.showError(`Playback failed: ${data.details}`);
        this.destroy();
      }
    });
    hls.on(Hls.Events.FRAG_BUFFERED, () => this.showError(''));
    hls.loadSource(src);
    hls.attachMedia(this.video);
  }

  fillLevels(levels) {
    const options = [el('option', { value: '-1' }, 'Auto')];
    levels.forEach((level, i) => {
      const name = level.name || (level.height ? `${level.height}p` : `level ${i}`);
      const size = level.width && level.height ? `${level.width}×${level.height}` : '';
      const label = [name, size, fmtBitrate(level.bitrate)].filter(Boolean).join(' · ');
      options.push(el('option', { value: String(i) }, label));
    });
    this.select.replaceChildren(...options);
    this.select.value = '-1';
    this.select.disabled = levels.length < 1;
    this.updateLabel();
  }

  updateLabel() {
    const hls = this.hls;
    if (!hls) return;
    const playing = hls.currentLevel;
    const level = hls.levels && hls.levels[playing];
    this.levelLabel.dataset.level = String(playing);
    this.levelLabel.dataset.auto = String(hls.autoLevelEnabled);
    this.levelLabel.textContent = level
      ? `playing ${level.height ? `${level.height}p` : `level ${playing}`}${hls.autoLevelEnabled ? ' (auto)' : ''}`
      : '';
  }

  showError(message) {
    this.errorBox.textContent = message;
    this.errorBox.hidden = !message;
  }

  destroy() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.source = null;
    this.key = null;
    this.select.replaceChildren(el('option', { value: '-1' }, 'Auto'));
    this.select.disabled = true;
    this.levelLabel.textContent = '';
    this.levelLabel.dataset.level = '-1';
    this.video.removeAttribute('src');
    this.video.removeAttribute('poster');
    this.video.load();
  }
}
