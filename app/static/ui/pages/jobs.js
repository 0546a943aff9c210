// Jobs: the list, the new-job form (its fields, ranges and defaults read from /openapi.json), and one job's
// page: status, progress with an ETA, live curves from the job's server-sent events, cancel, error, warnings.
import {events, get, send, whoami} from "../api.js";
import {lineChart, merge} from "../charts.js";
import {badge, errorBox, fmt, h, shortId, table, toast} from "../dom.js";
import {warningsBox} from "./datasets.js";

const TERMINAL = ["succeeded", "failed", "cancelled"];
const RECONNECT_MS = 2000;

export async function jobsPage() {
  const page = await get("/jobs?limit=200");
  const rows = page.items.map((job) => [
    h("a", {href: `#/jobs/${job.id}`}, job.name ?? job.id.slice(0, 8)), job.kind ?? "train", badge(job.status),
    fmt.pct(job.progress.fraction), job.base_model.split("/").pop(), fmt.num(job.metrics.eval_macro_f1),
    fmt.date(job.created_at)]);
  return [
    h("h1", {}, "Jobs"), h("p", {}, h("a", {class: "button", href: "#/jobs/new"}, "New job")),
    rows.length ? table(["job", "kind", "status", "progress", "base model", "macro-F1", "created"], rows,
      {caption: `${page.total} jobs`, numeric: [3, 5]}) : h("p", {class: "note"}, "No jobs yet."),
  ];
}

// --- the form, from the OpenAPI schema --------------------------------------------------------------------------

/** What an OpenAPI property allows: a number range, special constants ("auto"), null, an enum, a boolean. */
function allowed(property) {
  const variants = property.anyOf ?? [property];
  return {
    number: variants.find((v) => v.type === "integer" || v.type === "number"),
    constants: variants.filter((v) => v.const !== undefined).map((v) => v.const),
    nullable: variants.some((v) => v.type === "null"),
    choices: variants.find((v) => v.enum)?.enum,
    boolean: variants.some((v) => v.type === "boolean"),
  };
}

/** "[0, 1)", "≥ 1", "1 to 100": the range of a number schema as the page shows it. */
function rangeText(number) {
  const low = number.minimum ?? number.exclusiveMinimum;
  const high = number.maximum ?? number.exclusiveMaximum;
  if (number.type === "integer" && number.exclusiveMinimum === undefined && number.exclusiveMaximum === undefined) {
    return high === undefined ? `≥ ${low}` : `${low} to ${high}`;
  }
  return `${number.exclusiveMinimum !== undefined ? "(" : "["}${low ?? "−∞"}, ${high ?? "∞"}${
    number.exclusiveMaximum !== undefined ? ")" : "]"}`;
}

const NONE = "none";  // how the page names null ("only at the end", "never", ...: the description says)
const VALUE = "value";

/** One input (or a mode select plus a number input) for a schema property; `.read()` gives its value. */
function schemaField(name, property, id = `hp-${name}`) {
  const kinds = allowed(property);
  const title = property.title ?? name;
  const hint = h("p", {class: "hint", id: `${id}-hint`}, property.description ?? "",
    ` Default: ${JSON.stringify(property.default ?? null)}.`);
  const described = {"aria-describedby": `${id}-hint`};
  if (kinds.choices) {
    const select = h("select", {id, name, ...described},
      kinds.choices.map((c) => h("option", {value: c, selected: c === property.default}, c)));
    return {element: h("div", {class: "field"}, h("label", {for: id}, title), select, hint), read: () => select.value};
  }
  if (kinds.boolean) {
    const box = h("input", {type: "checkbox", id, name, checked: property.default === true, ...described});
    return {element: h("div", {class: "field"}, h("label", {class: "inline"}, box, title), hint), read: () => box.checked};
  }
  const number = kinds.number;
  const input = h("input", {type: "number", id, name, step: number.type === "integer" ? "1" : "any",
    min: number.minimum ?? number.exclusiveMinimum, max: number.maximum ?? number.exclusiveMaximum,
    value: typeof property.default === "number" ? String(property.default) : "",
    "aria-label": `${title}, ${rangeText(number)}`, ...described});
  const modes = [...kinds.constants, VALUE, ...(kinds.nullable ? [NONE] : [])];
  if (modes.length === 1) {
    return {element: h("div", {class: "field"}, h("label", {for: id}, `${title} `, h("span", {class: "hint"},
      rangeText(number))), input, hint), read: () => Number(input.value)};
  }
  const initial = property.default === null ? NONE : typeof property.default === "number" ? VALUE : property.default;
  const mode = h("select", {id, name: `${name}-mode`, ...described}, modes.map((m) => h("option",
    {value: m, selected: m === initial}, m === VALUE ? `a number, ${rangeText(number)}` : m)));
  const sync = () => { input.hidden = mode.value !== VALUE; input.required = mode.value === VALUE; };
  mode.addEventListener("change", () => { sync(); if (!input.hidden) input.focus(); });
  sync();
  return {
    element: h("div", {class: "field"}, h("label", {for: id}, title), h("div", {class: "field-inputs"}, mode, input), hint),
    read: () => (mode.value === VALUE ? Number(input.value) : mode.value === NONE ? null : mode.value),
  };
}

function resolve(schema, node) {
  return node.$ref ? schema.components.schemas[node.$ref.split("/").pop()] : node;
}

export async function newJobPage({args: [query]}) {
  const {schema} = await whoami();
  const [datasets, baseModels] = await Promise.all([get("/datasets?limit=200"), get("/base-models")]);
  const create = schema.components.schemas.JobCreate;
  const hyper = resolve(schema, create.properties.hyperparameters);
  const preselected = new URLSearchParams(query ?? "").get("dataset");
  if (!datasets.items.length) {
    return [h("h1", {}, "New job"), h("p", {}, "Upload a dataset first: ", h("a", {href: "#/datasets"}, "Datasets"), ".")];
  }
  const datasetOption = (d) => h("option", {value: d.id, selected: d.id === preselected},
    `${d.name} (${fmt.int(d.n_rows)} rows, ${Object.keys(d.labels).length} labels)`);
  const dataset = h("select", {id: "job-dataset", required: true}, datasets.items.map(datasetOption));
  const evalDataset = h("select", {id: "job-eval-dataset"},
    h("option", {value: ""}, "none: hold out a fraction of the dataset"), datasets.items.map(datasetOption));
  evalDataset.value = "";
  const OTHER = "\u0000other";
  const base = h("select", {id: "job-base"},
    baseModels.map((m) => h("option", {value: m.name, selected: m.name === create.properties.base_model.default},
      `${m.name}${m.description ? ` — ${m.description}` : ""}`)),
    h("option", {value: OTHER}, "another BERT directory on the server…"));
  const basePath = h("input", {type: "text", id: "job-base-path", placeholder: "/path/to/bert", hidden: true,
    "aria-label": "Base model directory on the server"});
  const syncBase = () => { basePath.hidden = base.value !== OTHER; basePath.required = !basePath.hidden; };
  base.addEventListener("change", syncBase);
  syncBase();
  const name = h("input", {type: "text", id: "job-name", maxlength: "255"});
  const evalFraction = schemaField("eval_fraction", create.properties.eval_fraction, "job-eval-fraction");
  const fields = Object.entries(hyper.properties).map(([key, property]) => [key, property, schemaField(key, property)]);
  const result = h("div", {"aria-live": "polite"});

  const form = h("form", {"aria-labelledby": "new-job-title"},
    h("h1", {id: "new-job-title"}, "New job"),
    h("div", {class: "panel grid"},
      h("div", {}, h("label", {for: "job-dataset"}, "Dataset"), dataset),
      h("div", {}, h("label", {for: "job-eval-dataset"}, "Eval dataset"), evalDataset),
      h("div", {}, h("label", {for: "job-base"}, "Base model"), base, basePath),
      h("div", {}, h("label", {for: "job-name"}, "Name (optional)"), name),
      evalFraction.element),
    h("fieldset", {}, h("legend", {}, "Hyperparameters"),
      h("p", {class: "hint"}, hyper.description ?? "", " Ranges and defaults come from the API's schema."),
      h("div", {class: "grid"}, fields.map(([, , field]) => field.element))),
    h("p", {}, h("button", {type: "submit"}, "Start the job")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const hyperparameters = {};
    for (const [key, property, field] of fields) {
      const value = field.read();
      if (JSON.stringify(value) !== JSON.stringify(property.default ?? null)) hyperparameters[key] = value;
    }
    const body = {dataset_id: dataset.value, base_model: base.value === OTHER ? basePath.value.trim() : base.value,
      hyperparameters};
    if (evalDataset.value) body.eval_dataset_id = evalDataset.value;
    else body.eval_fraction = evalFraction.read();
    if (name.value.trim()) body.name = name.value.trim();
    try {
      const job = await send("POST", "/jobs", body);
      toast(`Job ${job.id.slice(0, 8)} queued`);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  return form;
}

/** Resolves when the job reaches a terminal status, read from its event stream. */
export async function jobEnd(jobId, signal) {
  let last = null;
  for await (const {event, data} of events(`/jobs/${jobId}/events`, signal)) {
    if (event === "status") last = data;
  }
  return last;
}

// --- one job ----------------------------------------------------------------------------------------------------

const ETA_POINTS = 10;  // the rate of the last few train points: a resumed job's pause does not count

/** Seconds left, from the server's own train-point times (no clock skew with the browser). Null until two
 * points exist. */
function etaSeconds(job, trainPoints) {
  const total = job.progress.total_steps;
  if (!total || trainPoints.length < 2) return null;
  const [first, last] = [trainPoints.at(-Math.min(ETA_POINTS, trainPoints.length)), trainPoints.at(-1)];
  const seconds = (Date.parse(last.time) - Date.parse(first.time)) / 1000;
  const rate = (last.step - first.step) / seconds;  // steps per second
  return rate > 0 ? (total - job.progress.step) / rate : null;
}

function autoChoices(job) {
  if (!job.auto_choices) return null;
  return table(["hyperparameter", "auto chose", "why"], Object.entries(job.auto_choices).map(([key, choice]) =>
    [h("code", {}, key), String(choice.value), choice.reason]), {caption: "What auto chose"});
}

/** A hyperparameter as the job was given it: "auto" with what it became, a string bare, anything else as JSON. */
function setting(job, key, value) {
  const chosen = job.auto_choices?.[key];
  if (value === "auto" && chosen) return `auto → ${chosen.value}`;
  return typeof value === "string" ? value : JSON.stringify(value);
}

class JobView {
  constructor(job) {
    this.train = [];
    this.eval = [];
    this.status = h("span", {id: "job-status", role: "status"});
    this.progress = h("progress", {id: "job-progress", max: "1", value: "0", "aria-labelledby": "job-progress-label"});
    this.progressText = h("span", {id: "job-progress-text"});
    this.live = h("span", {class: "note", id: "job-live"});
    this.cancel = h("button", {type: "button", class: "danger", onclick: () => this.cancelJob()}, "Cancel job");
    this.details = h("div");
    this.message = h("div");
    this.loss = lineChart("Loss", [{label: "train loss"}, {label: "eval loss", points: true}], ["step", "loss"]);
    this.metrics = lineChart("Eval metrics", [{label: "accuracy", points: true}, {label: "macro-F1", points: true}],
      ["step", "score"], {yRange: [0, 1]});
    this.lr = lineChart("Learning-rate schedule", [{label: "learning rate"}], ["step", "learning rate"],
      {yFormat: (v) => (v === 0 ? "0" : v.toExponential(1))});
    this.element = h("div", {},
      h("h1", {}, "Job ", shortId(job.id), job.name ? ` ${job.name}` : ""),
      h("section", {"aria-label": "Status"},
        h("p", {class: "row"}, "Status: ", this.status, this.live),
        h("p", {id: "job-progress-label"}, "Progress: ", this.progressText), this.progress,
        this.message, h("p", {class: "row"}, this.cancel)),
      job.kind === "evaluate" ? null : h("div", {class: "grid"}, this.loss.element, this.metrics.element, this.lr.element),
      this.details);
    this.update(job);
  }

  update(job) {
    this.job = job;
    this.status.replaceChildren(badge(job.status));
    const {step, total_steps: total, epoch, fraction} = job.progress;
    this.progress.value = fraction;
    const eta = job.status === "running" ? etaSeconds(job, this.train) : null;
    this.progressText.textContent = `step ${step} of ${total ?? "?"} (${fmt.pct(fraction)}), epoch ${epoch.toFixed(2)}`
      + (eta !== null ? `, about ${fmt.duration(eta)} left` : "");
    this.cancel.hidden = TERMINAL.includes(job.status);
    this.message.replaceChildren(
      job.error ? h("div", {class: "error", role: "alert"}, h("strong", {}, `Job ${job.status}: `), job.error) : "",
      warningsBox(job.warnings, "Warnings") ?? "",
      job.model_id ? h("p", {}, job.kind === "evaluate" ? "Evaluates model " : "Model: ",
        h("a", {href: `#/models/${job.model_id}`, id: "job-model-link"}, job.model_id.slice(0, 8)),
        " — its evaluation reports, predict, deploy") : "");
    this.details.replaceChildren(
      autoChoices(job) ?? "",
      h("h3", {}, "Settings"),
      h("dl", {class: "facts"},
        h("dt", {}, "Dataset"), h("dd", {}, job.dataset_id ? h("a", {href: `#/datasets/${job.dataset_id}`},
          job.dataset_id.slice(0, 8)) : "–"),
        h("dt", {}, "Base model"), h("dd", {}, job.base_model),
        h("dt", {}, "Device"), h("dd", {}, job.device ?? "–"),
        h("dt", {}, "Created"), h("dd", {}, fmt.date(job.created_at)),
        h("dt", {}, "Finished"), h("dd", {}, fmt.date(job.finished_at)),
        ...Object.entries(job.hyperparameters ?? {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, setting(job, k, v))])));
  }

  setPoints(train, evals) {
    this.train = train;
    this.eval = evals;
    this.draw();
  }

  addPoint(point) {
    (point.kind === "eval" ? this.eval : this.train).push(point);
    this.drawSoon ??= requestAnimationFrame(() => { this.drawSoon = null; this.draw(); });
  }

  draw() {
    const train = this.train;
    this.loss.setData(merge(train.map((p) => [p.step, p.loss]), this.eval.map((p) => [p.step, p.loss])));
    this.metrics.setData(merge(this.eval.map((p) => [p.step, p.accuracy]), this.eval.map((p) => [p.step, p.macro_f1])));
    this.lr.setData(merge(train.filter((p) => p.learning_rate !== null).map((p) => [p.step, p.learning_rate])));
    const last = train.at(-1);
    this.loss.note(`${train.length} train points${last ? `, last train loss ${fmt.num(last.loss)} at step ${last.step}` : ""}`);
    this.loss.element.dataset.points = String(train.length);
    const best = this.eval.reduce((a, b) => (a && a.macro_f1 >= b.macro_f1 ? a : b), null);
    this.metrics.note(`${this.eval.length} evaluations${best ? `, best macro-F1 ${fmt.num(best.macro_f1)} at step ${best.step}` : ""}`);
    this.lr.note(last?.learning_rate !== undefined && last?.learning_rate !== null
      ? `learning rate ${last.learning_rate.toExponential(2)} at step ${last.step}` : "no learning-rate points yet");
    if (this.job.status === "running") this.update(this.job);  // the ETA follows the points
  }

  async cancelJob() {
    try {
      this.update(await send("POST", `/jobs/${this.job.id}/cancel`));
      toast("Cancel requested");
    } catch (error) {
      this.message.append(errorBox(error));
    }
  }

  /** Follows the job to its end: its event stream replays every metric point, then sends them as they come; a
   * stream cut before a terminal status is opened again (and replays again). A finished job's points come from
   * GET /jobs/{id}/metrics, as its stream sends only the final status. */
  async follow(signal) {
    while (!TERMINAL.includes(this.job.status) && !signal.aborted) {
      this.train = [];
      this.eval = [];
      this.live.textContent = "live";
      try {
        for await (const {event, data} of events(`/jobs/${this.job.id}/events`, signal)) {
          if (event === "metrics") this.addPoint(data);
          else this.update(data);
        }
      } catch (error) {
        if (signal.aborted) return;
        this.message.append(errorBox(`The event stream stopped (${error.message}); connecting again.`));
      }
      this.live.textContent = "";
      if (!TERMINAL.includes(this.job.status)) await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
    if (signal.aborted) return;
    const history = await get(`/jobs/${this.job.id}/metrics`, {signal});
    this.setPoints(history.train, history.eval);
  }
}

export async function jobPage({args: [id], signal}) {
  const view = new JobView(await get(`/jobs/${id}`));
  view.follow(signal).catch((error) => signal.aborted || view.message.append(errorBox(error)));
  return view.element;
}
