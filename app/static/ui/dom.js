// Small DOM helpers shared by the pages: element building, number formatting, messages.

/** h("td", {class: "num"}, "0.93") -> <td class="num">0.93</td>. Attributes starting with "on" are listeners;
 * false/null/undefined attributes and children are skipped; strings become text (never HTML). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

export const fmt = {
  num: (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits)),
  pct: (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`),
  int: (x) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en")),
  date: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
  bytes: (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`),
  duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
      : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  },
};

/** A short id for tables: the first 8 characters, the whole id in a tooltip. */
export const shortId = (id) => h("code", {title: id}, id.slice(0, 8));

/** An error box (role=alert) with one item per "line N: ..." part of an API message, so each is readable. */
export function errorBox(error) {
  const parts = String(error.message ?? error).split("; ");
  return h("div", {class: "error", role: "alert"},
    parts.length > 1 ? h("ul", {}, parts.map((part) => h("li", {}, part))) : h("p", {}, parts[0]));
}

/** A "not available" note for a section whose endpoint this server does not have (not in its /openapi.json). */
export const notAvailable = (what) => h("p", {class: "note unavailable"}, `${what}: not available on this server.`);

/** Announces a short message in the polite live region. */
export function toast(message) {
  const region = document.getElementById("toast");
  region.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { region.textContent = ""; }, 6000);
}

/** A status badge: text plus a class per status for colour (the text carries the meaning). */
export const badge = (status) => h("span", {class: `badge ${status}`}, status);

/** A table from column headers and rows of cells; numeric columns (by index) are right-aligned. */
export function table(headers, rows, {caption, numeric = []} = {}) {
  const cls = (i) => (numeric.includes(i) ? "num" : null);
  return h("div", {class: "table-wrap"}, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((text, i) => h("th", {scope: "col", class: cls(i)}, text)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell, i) => h("td", {class: cls(i)}, cell)))))));
}

/** Goes to a page of the dashboard, rendering it again when it is the current one. */
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
