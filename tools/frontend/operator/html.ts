/**
 * Server-rendered HTML for the console: escaping, the page frame (its CSS served as /console.css: no inline style
 * element, no CDN, no scripts, so the Content-Security-Policy can forbid them), tables, and charts as inline SVG.
 * Everything shown that came from a terminal or the database goes through esc().
 *
 * One time rule: every time shown is China time (UTC+8, no daylight saving), the clock the cards and the business
 * day use (modules/china-time), written with its offset; UTC stands beside it where a person may compare with logs.
 */
import { chinaDateTime } from "../../../modules/china-time/china-time";

export function esc(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Fen as yuan with two decimals (integer arithmetic: no floating-point cents). */
export function yuan(fen: number): string {
  const sign = fen < 0 ? "-" : "";
  const a = Math.abs(Math.trunc(fen));
  return `${sign}${Math.floor(a / 100)}.${String(a % 100).padStart(2, "0")}`;
}

/** China time with its offset: `2026-11-26 12:00:00 +08:00` (the business day is its date). */
export function time(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const { date, time: t } = chinaDateTime(ms);
  return `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)} ${t.slice(0, 2)}:${t.slice(2, 4)}:${t.slice(4, 6)} +08:00`;
}

/** The same instant in UTC, `2026-11-26 04:00:00Z`, shown beside China time where it helps (logs are in UTC). */
export function utcTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.[0-9]+Z$/, "Z");
}

/** The hour of day in China time, 0..23. */
export function chinaHour(ms: number): number {
  return Number(chinaDateTime(ms).time.slice(0, 2));
}

export const CONSOLE_CSS = `
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f4f5f7}
header{background:#12324a;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center;flex-wrap:wrap}
header a{color:#dbe9f5;text-decoration:none}header a.on{color:#fff;font-weight:600;border-bottom:2px solid #fff}
header .who{margin-left:auto}header form{display:inline}header button{background:none;border:1px solid #9bb;color:#fff;border-radius:3px;cursor:pointer}
main{padding:1em 1.2em}h1{font-size:1.3em;margin:.2em 0 .6em}h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:1em}th,td{padding:.3em .6em;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
.ok{color:#176b2c}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00}.muted{color:#667}
.pill{display:inline-block;padding:0 .5em;border-radius:1em;font-size:12px;background:#e3e6ea}
.pill.online{background:#d4f2dc;color:#176b2c}.pill.offline{background:#fde0dc;color:#b3261e}
form.inline{display:flex;gap:.6em;flex-wrap:wrap;align-items:end;margin-bottom:1em}label{display:flex;flex-direction:column;font-size:12px;color:#445}
input,select,textarea{font:inherit;padding:.25em .4em;border:1px solid #b8c0c8;border-radius:3px}button.primary{background:#12324a;color:#fff;border:0;padding:.4em 1em;border-radius:3px;cursor:pointer}
.errors{background:#fde0dc;border:1px solid #e7a59c;padding:.5em 1em;margin-bottom:1em}.notice{background:#d4f2dc;border:1px solid #9fd3ab;padding:.5em 1em;margin-bottom:1em}
.cards{display:flex;gap:1em;flex-wrap:wrap;margin-bottom:1em}.card{background:#fff;padding:.6em 1em;border:1px solid #e3e6ea;min-width:9em}.card b{display:block;font-size:1.5em}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1em}.charts figure{background:#fff;margin:0;padding:.6em;border:1px solid #e3e6ea}
figcaption{font-weight:600;margin-bottom:.3em}.login{max-width:22em;margin:4em auto;background:#fff;padding:1.5em;border:1px solid #e3e6ea}
.login label{margin-bottom:.8em}`;

export const NAV: [string, string][] = [
  ["/", "Fleet"], ["/purchases", "Purchases"], ["/attention", "Flagged"], ["/settlement", "Settlement"], ["/charts", "Charts"], ["/config", "Configuration"],
];

export function page(title: string, body: string, options: { path?: string; user?: string; name?: string } = {}): string {
  const nav = options.user === undefined ? "" : NAV.map(([href, label]) => {
    const on = href === "/" ? options.path === "/" : options.path?.startsWith(href);
    return `<a href="${href}"${on ? ' class="on"' : ""}>${label}</a>`;
  }).join("");
  const who = options.user === undefined ? "" : `<span class="who">${esc(options.user)} <form method="post" action="/logout"><button>Log out</button></form></span>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · ${esc(options.name ?? "front-end")}</title><link rel="stylesheet" href="/console.css"></head>
<body><header><strong>${esc(options.name ?? "front-end")}</strong>${nav}${who}</header><main><h1>${esc(title)}</h1>${body}</main></body></html>`;
}

/** A table; cells are HTML already (escape what comes from data). `num` marks right-aligned columns. */
export function table(headers: string[], rows: string[][], num: number[] = []): string {
  if (!rows.length) return `<p class="muted">Nothing to show.</p>`;
  const cls = (i: number) => (num.includes(i) ? ' class="num"' : "");
  return `<table><thead><tr>${headers.map((h, i) => `<th${cls(i)}>${esc(h)}</th>`).join("")}</tr></thead><tbody>${
    rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i)}>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}

export interface Bar {
  label: string;
  value: number;
}

const W = 460;
const H = 200;
const PAD = { left: 44, right: 8, top: 10, bottom: 42 };

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axis(max: number, unit: string): string {
  const lines: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const y = PAD.top + (H - PAD.top - PAD.bottom) * (1 - i / 4);
    lines.push(`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y}" y2="${y}" stroke="#e3e6ea"/>`);
    lines.push(`<text x="${PAD.left - 4}" y="${y + 4}" text-anchor="end" font-size="10" fill="#667">${esc(+(max * i / 4).toFixed(2))}${esc(unit)}</text>`);
  }
  return lines.join("");
}

/** A bar chart as inline SVG, with a <title> per bar for its exact value. */
export function barChart(bars: Bar[], options: { unit?: string; label: string; color?: string } = { label: "" }): string {
  if (!bars.length) return `<p class="muted">No data yet.</p>`;
  const max = niceMax(Math.max(...bars.map((b) => b.value)));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const step = plotW / bars.length;
  const every = Math.ceil(bars.length / 12);
  const parts = bars.map((b, i) => {
    const h = (b.value / max) * plotH;
    const x = PAD.left + i * step + step * 0.1;
    const text = i % every === 0 ? `<text x="${x + step * 0.4}" y="${H - PAD.bottom + 12}" font-size="10" fill="#445" text-anchor="end" transform="rotate(-35 ${x + step * 0.4} ${H - PAD.bottom + 12})">${esc(b.label)}</text>` : "";
    return `<rect x="${x.toFixed(1)}" y="${(PAD.top + plotH - h).toFixed(1)}" width="${(step * 0.8).toFixed(1)}" height="${h.toFixed(1)}" fill="${options.color ?? "#2f6f9f"}"><title>${esc(b.label)}: ${esc(b.value)}</title></rect>${text}`;
  });
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(options.label)}" xmlns="http://www.w3.org/2000/svg">${axis(max, options.unit ?? "")}${parts.join("")}</svg>`;
}

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
}

/** A line chart over time (x in epoch milliseconds) as inline SVG. */
export function lineChart(series: Series[], options: { unit?: string; label: string }): string {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return `<p class="muted">No data yet.</p>`;
  const max = niceMax(Math.max(...all.map((p) => p.y)));
  const x0 = Math.min(...all.map((p) => p.x));
  const x1 = Math.max(x0 + 1, ...all.map((p) => p.x));
  const sx = (x: number) => PAD.left + ((x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (y: number) => PAD.top + (1 - y / max) * (H - PAD.top - PAD.bottom);
  const lines = series.map((s) => {
    const pts = s.points.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
    return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${pts}"><title>${esc(s.name)}</title></polyline>` +
      s.points.map((p) => `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="2.5" fill="${s.color}"><title>${esc(s.name)} ${esc(time(p.x))}: ${esc(p.y)}</title></circle>`).join("");
  });
  const legend = series.map((s, i) => `<text x="${PAD.left + 8 + i * 90}" y="${H - 8}" font-size="11" fill="${s.color}">■ ${esc(s.name)}</text>`).join("");
  const ticks = `<text x="${PAD.left}" y="${H - PAD.bottom + 14}" font-size="10" fill="#445">${esc(time(x0))}</text>` +
    `<text x="${W - PAD.right}" y="${H - PAD.bottom + 14}" font-size="10" fill="#445" text-anchor="end">${esc(time(x1))}</text>`;
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(options.label)}" xmlns="http://www.w3.org/2000/svg">${axis(max, options.unit ?? "")}${lines.join("")}${ticks}${legend}</svg>`;
}
