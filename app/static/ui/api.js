// The dashboard's one door to the service: the public REST API and its server-sent events, nothing else.
//
// Auth: with API_KEYS set the first call answers 401; the page then asks for a key once (app.js's dialog), keeps
// it in sessionStorage (this tab only, gone when it closes) and sends it as "Authorization: Bearer <key>" on every
// call. The job events are read with fetch() as a stream for the same reason: EventSource cannot send that
// header, and a key in a query string would end up in access logs and the browser history.

const KEY = "apiKey";
let askForKey = async () => { throw new Error("no key prompt installed"); };
let roleProbe = null;

export class ApiError extends Error {
  constructor(status, detail) {
    super(describe(detail));
    this.status = status;
    this.detail = detail;
  }
}

/** FastAPI's {"detail": ...}: a message, pydantic's list of field errors, or an object with a message. */
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((e) => `${(e.loc ?? []).join(".")}: ${e.msg}`).join("; ");
  return detail?.message ?? JSON.stringify(detail);
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  setKey(key) { sessionStorage.setItem(KEY, key); roleProbe = null; },
  forget() { sessionStorage.removeItem(KEY); roleProbe = null; },
  /** `prompt(reason)` resolves once the visitor has given a key (reason: why the last one failed, or null). */
  onKeyNeeded(prompt) { askForKey = prompt; },
};

/** fetch() with the key; a 401 asks for a key and retries; any other non-2xx throws ApiError. */
export async function request(path, {method = "GET", json, body, headers = {}, signal} = {}) {
  for (;;) {
    const sent = {...headers};
    const key = session.key;
    if (key) sent.Authorization = `Bearer ${key}`;
    if (json !== undefined) {
      sent["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    const response = await fetch(path, {method, headers: sent, body, signal});
    if (response.status === 401) {
      await askForKey(key ? "That key was not accepted." : null);
      continue;
    }
    if (!response.ok) {
      const text = await response.text();
      let detail = text;
      try { detail = JSON.parse(text).detail ?? text; } catch { /* not JSON: keep the text */ }
      throw new ApiError(response.status, detail);
    }
    return response;
  }
}

export const get = async (path, options) => (await request(path, options)).json();
export async function send(method, path, json) {
  const response = await request(path, {method, json});
  return response.status === 204 ? null : response.json();
}

export const isForbidden = (error) => error instanceof ApiError && error.status === 403;

/** "admin" or "predict": what the key may do, learned once per key from the admin-only /openapi.json (the
 * schema the job form reads anyway). Resolves to {role, schema}. */
export function whoami() {
  roleProbe ??= get("/openapi.json").then(
    (schema) => ({role: "admin", schema}),
    (error) => {
      if (isForbidden(error)) return {role: "predict", schema: null};
      roleProbe = null;  // a transient failure: ask again next time
      throw error;
    });
  return roleProbe;
}

/** The server-sent events of `path` as {event, data} (data parsed as JSON), read from a fetch() stream so the
 * Authorization header goes with it. Ends when the server closes the stream or `signal` aborts. */
export async function* events(path, signal) {
  const response = await request(path, {headers: {Accept: "text/event-stream"}, signal});
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value.replaceAll("\r\n", "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield {event, data: JSON.parse(data.join("\n"))};
    }
  }
}

/** Saves a response body (e.g. a model download) as a file: fetched with the key, handed to the browser. */
export async function download(path, filename) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), {href: url, download: filename});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
