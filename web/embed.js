// The share/embed page (embed.html?v=PLAYBACK_ID): plays a video through its playback id alone
// (the video id of a public video, or a signed, expiring id). No API token is read or sent.
// When the link is refused (403: expired or not valid), playback stops and the page says why.

const video = document.getElementById('embed-player');
const errorBox = document.getElementById('embed-error');
const playbackId = new URLSearchParams(window.location.search).get('v') || '';
document.body.dataset.state = 'loading';

function fail(message) {
  document.body.dataset.state = 'error';
  errorBox.textContent = message;
  errorBox.hidden = false;
}

function refusal(code) {
  if (code === 403) return 'This link has expired or is not valid: ask for a new one.';
  if (code === 404) return 'This video does not exist or is not ready yet.';
  return `Playback failed${code ? ` (HTTP ${code})` : ''}.`;
}

function start() {
  if (!/^[A-Za-z0-9_.]{1,200}$/.test(playbackId)) {
    fail('This link names no video.');
    return;
  }
  const base = `/v1/play/${playbackId}`;
  video.poster = `${base}/thumbnail.jpg`;
  const Hls = window.Hls;
  if (!Hls || !Hls.isSupported()) {
    if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.src = `${base}/hls/master.m3u8`;
      video.addEventListener('error', () => fail(refusal(0)));
      return;
    }
    fail('This browser cannot play HLS.');
    return;
  }
  const hls = new Hls({ startLevel: -1 });
  hls.on(Hls.Events.MANIFEST_PARSED, () => { document.body.dataset.state = 'ready'; });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    const code = data.response && data.response.code;
    // A refused link does not come back by retrying: stop at once.
    if (code === 403 || (data.fatal && data.type === Hls.ErrorTypes.NETWORK_ERROR)) {
      hls.destroy();  // detaches the media element too
      fail(refusal(code));
    } else if (data.fatal && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
    } else if (data.fatal) {
      hls.destroy();
      fail(`Playback failed: ${data.details}`);
    }
  });
  hls.loadSource(`${base}/hls/master.m3u8`);
  hls.attachMedia(video);
}

if (document.readyState === 'loading') window.addEventListener('DOMContentLoaded', start);
else start();
