// Local capture: getUserMedia with fallbacks, device lists, and opening a chosen device.
// No DOM access; failures come back as {source, key, message} for the UI to localize.

export const VIDEO_CONSTRAINTS = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 30 },
};

export const AUDIO_CONSTRAINTS = {
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
};

function videoConstraints(deviceId) {
  return deviceId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...VIDEO_CONSTRAINTS };
}

function audioConstraints(deviceId) {
  return deviceId ? { ...AUDIO_CONSTRAINTS, deviceId: { exact: deviceId } } : { ...AUDIO_CONSTRAINTS };
}

/** The i18n key for a capture failure of `source` ('mic' | 'camera'). */
export function failureKey(source, err) {
  const cam = source === 'camera';
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return cam ? 'camDenied' : 'micDenied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return cam ? 'camMissing' : 'micMissing';
    case 'NotReadableError':
    case 'AbortError':
      return cam ? 'camBusy' : 'micBusy';
    case 'TypeError':
      return 'mediaUnsupported';
    default:
      return 'mediaOther';
  }
}

function failure(source, err) {
  return { source, key: failureKey(source, err), name: err?.name || 'Error', message: err?.message || String(err) };
}

export function mediaSupported() {
  return !!(globalThis.navigator?.mediaDevices?.getUserMedia);
}

/**
 * Open microphone and camera. Tries both at once (one permission prompt), then each alone, so
 * a denied or missing device does not prevent the other from working.
 * @returns {Promise<{mic: MediaStreamTrack|null, camera: MediaStreamTrack|null, failures: object[]}>}
 */
export async function openLocalMedia({ micId = null, cameraId = null } = {}) {
  if (!mediaSupported()) {
    const err = new TypeError('navigator.mediaDevices is not available');
    return { mic: null, camera: null, failures: [failure('mic', err)] };
  }
  const md = navigator.mediaDevices;
  try {
    const stream = await md.getUserMedia({ audio: audioConstraints(micId), video: videoConstraints(cameraId) });
    return { mic: stream.getAudioTracks()[0] || null, camera: stream.getVideoTracks()[0] || null, failures: [] };
  } catch (bothErr) {
    console.info('ketang: getUserMedia(audio+video) failed, trying each device alone:', bothErr.name);
  }
  const result = { mic: null, camera: null, failures: [] };
  try {
    const s = await md.getUserMedia({ audio: audioConstraints(micId) });
    result.mic = s.getAudioTracks()[0] || null;
  } catch (err) {
    result.failures.push(failure('mic', err));
  }
  try {
    const s = await md.getUserMedia({ video: videoConstraints(cameraId) });
    result.camera = s.getVideoTracks()[0] || null;
  } catch (err) {
    result.failures.push(failure('camera', err));
  }
  return result;
}

/** Open one device: `source` is 'mic' or 'camera'. Throws a failure object on error. */
export async function openDevice(source, deviceId) {
  const constraints = source === 'mic' ? { audio: audioConstraints(deviceId) } : { video: videoConstraints(deviceId) };
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    return source === 'mic' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
  } catch (err) {
    throw failure(source, err);
  }
}

/** Start a screen capture (teacher). Throws a failure object on error. */
export async function openScreen() {
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    return stream.getVideoTracks()[0];
  } catch (err) {
    throw { source: 'screen', key: 'mediaOther', name: err?.name || 'Error', message: err?.message || String(err) };
  }
}

export function screenShareSupported() {
  return !!(globalThis.navigator?.mediaDevices?.getDisplayMedia);
}

/** `{mic: MediaDeviceInfo[], camera: MediaDeviceInfo[]}` (labels are empty before permission). */
export async function listDevices() {
  if (!globalThis.navigator?.mediaDevices?.enumerateDevices) return { mic: [], camera: [] };
  const all = await navigator.mediaDevices.enumerateDevices();
  return {
    mic: all.filter((d) => d.kind === 'audioinput' && d.deviceId),
    camera: all.filter((d) => d.kind === 'videoinput' && d.deviceId),
  };
}

/** The deviceId a live track was opened from, if the browser tells. */
export function deviceIdOf(track) {
  return track?.getSettings?.().deviceId || null;
}

export function onDeviceChange(fn) {
  navigator.mediaDevices?.addEventListener?.('devicechange', fn);
}
