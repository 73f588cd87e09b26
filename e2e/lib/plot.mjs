// A small SVG line plot of a bandwidth timeline (no plotting library: the e2e suite has one
// dependency, playwright-core). Two panels: received video kbit/s and decoded frame height,
// with the link's phases shaded.

const W = 900;
const PANEL_H = 200;
const M = { left: 60, right: 20, top: 30, gap: 50, bottom: 40 };

function esc(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

function panel({ y0, samples, key, max, label, ticks, tEnd, phases }) {
  const x = (t) => M.left + (t / tEnd) * (W - M.left - M.right);
  const y = (v) => y0 + PANEL_H - (Math.min(v, max) / max) * PANEL_H;
  const parts = [];
  phases.forEach((p) => {
    // The constrained phases (kbit/s) in red, the fast ones in blue.
    const fill = /kbit/.test(p.label) ? '#f3e3e3' : '#e8eef6';
    parts.push(`<rect x="${x(p.from)}" y="${y0}" width="${x(p.to) - x(p.from)}" height="${PANEL_H}" fill="${fill}"/>`);
    parts.push(`<text x="${(x(p.from) + x(p.to)) / 2}" y="${y0 + 14}" text-anchor="middle" font-size="12">${esc(p.label)}</text>`);
  });
  for (const v of ticks) {
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#ccc"/>`);
    parts.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${v}</text>`);
  }
  const pts = samples.map((s) => `${x(s.t).toFixed(1)},${y(s[key]).toFixed(1)}`).join(' ');
  parts.push(`<polyline points="${pts}" fill="none" stroke="#1f5fbf" stroke-width="2"/>`);
  parts.push(`<text x="${M.left}" y="${y0 - 8}" font-size="13" font-weight="bold">${esc(label)}</text>`);
  parts.push(`<rect x="${M.left}" y="${y0}" width="${W - M.left - M.right}" height="${PANEL_H}" fill="none" stroke="#888"/>`);
  return parts.join('\n');
}

/** `report`: {phases: [{label, from, to}], samples: [{t, videoKbps, frameHeight}], freezeSeconds}. */
export function timelineSvg(report) {
  const { samples, phases } = report;
  const tEnd = phases[phases.length - 1].to;
  const maxKbps = Math.max(2000, ...samples.map((s) => s.videoKbps));
  const top = M.top;
  const second = M.top + PANEL_H + M.gap;
  const H = second + PANEL_H + M.bottom;
  const kbpsTicks = [0, 500, 1000, 1500, 2000].filter((v) => v <= maxKbps);
  const x = (t) => M.left + (t / tEnd) * (W - M.left - M.right);
  const timeTicks = [];
  for (let t = 0; t <= tEnd; t += 10) {
    timeTicks.push(`<text x="${x(t)}" y="${second + PANEL_H + 16}" text-anchor="middle" font-size="11">${t} s</text>`);
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    panel({ y0: top, samples, key: 'videoKbps', max: maxKbps, label: 'Video received (kbit/s)', ticks: kbpsTicks, tEnd, phases }),
    panel({ y0: second, samples, key: 'frameHeight', max: 800, label: `Decoded frame height (px); freezes across the drop and the recovery: ${report.freezeSeconds} s`, ticks: [180, 360, 720], tEnd, phases }),
    ...timeTicks,
    '</svg>',
    '',
  ].join('\n');
}
