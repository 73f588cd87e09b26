// Formatting of library values: durations, sizes, timeline positions.

/** `m:ss` or `h:mm:ss` of milliseconds. */
export function clock(ms) {
  const total = Math.max(0, Math.floor((ms || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** Bytes as B, KB, MB or GB (powers of 1024, one decimal from MB). */
export function size(bytes) {
  if (bytes === null || bytes === undefined) return '—';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

/** A note's place on the timeline, in percent (0–100). */
export function percent(atMs, durationMs) {
  if (!durationMs || durationMs <= 0) return 0;
  return Math.min(100, Math.max(0, (atMs / durationMs) * 100));
}
