// Models: the list (and the deployment history), and one model's page: its evaluation report, deploy (with the
// promotion gate where the server has one), rollback, download, and a predict box with every class's score.
import {ApiError, download, get, isForbidden, send} from "../api.js";
import {badge, errorBox, fmt, go, h, notAvailable, shortId, table, toast} from "../dom.js";
import {comparisonTables, renderReport} from "../report.js";

/** Whether the server documents `method path` (the admin key's schema); null when this key cannot read it. */
export function hasRoute(schema, method, path) {
  return schema ? Boolean(schema.paths[path]?.[method]) : null;
}

/** The datasets that each of `models` can be evaluated on, by the server's rule (app/evaluation.check_evaluable):
 * the models' kind (single- or multi-label) and no label they lack. The pickers offer only these. */
export function evaluableBy(datasets, models) {
  return datasets.filter((d) => models.every((m) => d.multi_label === (m.problem_type === "multi_label_classification")
    && Object.keys(d.labels).every((label) => m.labels.includes(label))));
}

/** A <select> of the datasets, or, when there is none, one disabled choice that says so. */
export function datasetPicker(id, datasets) {
  return h("select", {id, disabled: !datasets.length}, datasets.length
    ? datasets.map((d) => h("option", {value: d.id}, d.name))
    : h("option", {value: ""}, "no dataset of this kind and these labels"));
}

async function deploymentsSection(schema) {
  if (!hasRoute(schema, "get", "/deployments")) {
    return h("section", {}, h("h2", {}, "Deployments"), notAvailable("The deployment history"));
  }
  const items = (await get("/deployments")).items;
  return h("section", {}, h("h2", {}, "Deployments"), items.length ? table(["when", "model", "previous", "reason"],
    items.map((d) => [fmt.date(d.created_at), h("a", {href: `#/models/${d.model_id}`}, d.model_id.slice(0, 8)),
      d.previous_model_id ? d.previous_model_id.slice(0, 8) : "–", d.reason])) : h("p", {class: "note"}, "None yet."));
}

export async function modelsPage({who}) {
  const page = await get("/models?limit=200");
  const rows = page.items.map((m) => [
    h("a", {href: `#/models/${m.id}`}, m.id.slice(0, 8)), m.deployed ? badge("deployed") : "",
    m.base_model.split("/").pop(), String(m.labels.length), fmt.num(m.metrics?.eval_accuracy),
    fmt.num(m.metrics?.eval_macro_f1), fmt.date(m.created_at)]);
  return [
    h("h1", {}, "Models"),
    rows.length ? table(["model", "", "base model", "labels", "accuracy", "macro-F1", "created"], rows,
      {caption: `${page.total} models`, numeric: [3, 4, 5]}) : h("p", {class: "note"}, "No models yet: train one."),
    who.role === "admin" ? await deploymentsSection(who.schema) : null,
  ];
}

// --- predict ----------------------------------------------------------------------------------------------------

/** Every class's score as a bar, highest first; the predicted class(es) marked. */
function scoreBars(prediction) {
  const chosen = new Set(prediction.labels ?? (prediction.label === null ? [] : [prediction.label]));
  const scores = Object.entries(prediction.scores).sort((a, b) => b[1] - a[1]);
  const answer = prediction.labels ? (prediction.labels.length ? prediction.labels.join(", ") : "no label")
    : prediction.abstained ? "abstained (below the model's min_confidence)" : prediction.label;
  return h("div", {class: "prediction"},
    h("p", {}, "Prediction: ", h("strong", {id: "predicted-label"}, answer)),
    h("ul", {class: "scores", "aria-label": "Scores of every class"}, scores.map(([label, score]) =>
      h("li", {class: chosen.has(label) ? "chosen" : null},
        h("span", {}, label), h("span", {class: "bar", "aria-hidden": "true"}, h("span", {style: `width: ${(100 * score).toFixed(1)}%`})),
        h("span", {class: "num"}, fmt.pct(score))))));
}

function predictBox(model) {
  const text = h("textarea", {id: "predict-text", rows: "3", required: true});
  const pair = h("input", {type: "text", id: "predict-pair"});
  const result = h("div", {"aria-live": "polite", id: "predict-result"});
  const form = h("form", {class: "panel", "aria-labelledby": "predict-title"},
    h("h2", {id: "predict-title"}, "Try it"),
    h("label", {for: "predict-text"}, "Text"), text,
    h("label", {for: "predict-pair"}, "Text pair (optional)"), pair,
    h("p", {}, h("button", {type: "submit"}, "Predict")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = pair.value ? {text: text.value, text_pair: pair.value} : text.value;
    try {
      const answer = await send("POST", "/predict", {model: model.id, inputs: [input], return_all_scores: true});
      result.replaceChildren(scoreBars(answer.predictions[0]));
    } catch (error) {
      result.replaceChildren(errorBox(error));
    }
  });
  return form;
}

// --- deploy, rollback, download ---------------------------------------------------------------------------------

/** A button whose action may be refused: a 403 disables it and says why; other errors show next to it. */
function action(label, run, {cls = null, id = null} = {}) {
  const out = h("span", {"aria-live": "polite"});
  const button = h("button", {type: "button", class: cls, id, onclick: async () => {
    button.disabled = true;
    out.replaceChildren();
    try {
      await run(out);
      button.disabled = false;
    } catch (error) {
      out.replaceChildren(errorBox(isForbidden(error) ? "Your key's role may not do this." : error));
      button.disabled = isForbidden(error);
    }
  }}, label);
  return h("div", {class: "action"}, button, out);
}

/** A 409 on deploy: the gate's refusal (one line per reason, then the comparison, B = this model), or another
 * conflict's message (e.g. another model was deployed while the gate compared). */
function refusal(error) {
  const detail = error instanceof ApiError && typeof error.detail === "object" ? error.detail : null;
  if (!detail?.reasons) return h("div", {id: "gate-refusal"}, errorBox(error));
  return h("div", {id: "gate-refusal"},
    h("div", {class: "error", role: "alert"},
      h("p", {}, `Refused by the promotion gate: this model does not beat the deployed model ` +
        `${detail.deployed_model_id.slice(0, 8)} on the dataset.`),
      h("ul", {}, detail.reasons.map((reason) => h("li", {}, reason)))),
    detail.comparison ? comparisonTables(detail.comparison) : null);
}

/** Deploy, with the promotion gate's fields (DeployRequest in the schema) when the server has the gate. */
async function deployPanel(model, schema) {
  const gate = schema?.components.schemas.DeployRequest?.properties;
  const require = h("input", {type: "checkbox", id: "gate-require"});
  const datasets = gate ? (await get("/datasets?limit=200")).items : [];
  const onDataset = datasetPicker("gate-dataset", evaluableBy(datasets, [model]));
  const maxDrop = h("input", {type: "number", id: "gate-max-drop", min: "0", max: "1", step: "0.01",
    value: String(gate?.max_class_drop?.default ?? "")});
  return h("div", {class: "panel"},
    gate ? h("fieldset", {}, h("legend", {}, "Promotion gate"),
      h("label", {class: "inline"}, require, "Only if at least as good as the deployed model"),
      h("p", {class: "hint"}, gate.require_better_than_deployed.description),
      h("div", {class: "row"}, h("label", {for: "gate-dataset"}, "on dataset"), onDataset,
        h("label", {for: "gate-max-drop"}, "largest class F1 drop"), maxDrop)) : null,
    action("Deploy", async (out) => {
      const body = require.checked
        ? {require_better_than_deployed: true, on_dataset: onDataset.value, max_class_drop: Number(maxDrop.value)}
        : undefined;
      try {
        await send("POST", `/models/${model.id}/deploy`, body);
      } catch (error) {
        if (error.status !== 409) throw error;
        out.replaceChildren(refusal(error));
        return;
      }
      toast(`Model ${model.id.slice(0, 8)} deployed`);
      go(`#/models/${model.id}`);
    }, {id: "deploy"}));
}

async function actions(model, who) {
  const schema = who.schema;
  const items = [];
  if (!model.deployed) items.push(await deployPanel(model, schema));
  if (model.deployed && hasRoute(schema, "post", "/deployments/rollback")) {
    items.push(action("Roll back to the previously deployed model", async () => {
      const now = await send("POST", "/deployments/rollback");
      toast(`Rolled back: model ${now.id.slice(0, 8)} is deployed`);
      go(`#/models/${now.id}`);
    }, {cls: "secondary", id: "rollback"}));
  }
  items.push(action("Download (.tar.gz)", () => download(`/models/${model.id}/download`, `model-${model.id}.tar.gz`),
    {cls: "secondary", id: "download"}));
  return h("div", {class: "row"}, items);
}

/** The model's evaluations (held out, and on datasets by evaluation jobs), each report shown on demand, and a
 * form that evaluates the model on a dataset (an evaluation job, followed on its page). */
async function evaluationsSection(model, who) {
  if (!hasRoute(who.schema, "get", "/models/{model_id}/evaluations")) return null;
  const [list, datasets] = await Promise.all([get(`/models/${model.id}/evaluations?limit=200`),
    get("/datasets?limit=200")]);
  const names = new Map(datasets.items.map((d) => [d.id, d.name]));
  const shown = h("div", {id: "evaluation-shown"});
  const rows = list.items.map((e) => [
    e.source === "held_out" ? "held-out rows" : names.get(e.dataset_id) ?? e.dataset_id?.slice(0, 8) ?? "–",
    fmt.date(e.created_at), fmt.num(e.report.metrics.accuracy), fmt.num(e.report.metrics.macro_f1),
    h("button", {type: "button", class: "secondary", onclick: () => shown.replaceChildren(
      h("h3", {}, `Report on ${e.source === "held_out" ? "the held-out rows" : names.get(e.dataset_id) ?? "a dataset"}`),
      renderReport(e.report))}, "Show report")]);
  const dataset = datasetPicker("evaluate-dataset", evaluableBy(datasets.items, [model]));
  const out = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "row"}, h("label", {for: "evaluate-dataset"}, "Evaluate on"), dataset,
    h("button", {type: "submit", disabled: dataset.disabled}, "Start an evaluation job"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await send("POST", `/models/${model.id}/evaluations`, {dataset_id: dataset.value});
      go(`#/jobs/${job.id}`);
    } catch (error) {
      out.replaceChildren(errorBox(error));
    }
  });
  return h("section", {"aria-labelledby": "evaluations-title"}, h("h2", {id: "evaluations-title"}, "Evaluations"),
    rows.length ? table(["on", "when", "accuracy", "macro-F1", ""], rows, {numeric: [2, 3]}) : null,
    form, shown);
}

/** PATCH /models/{id}: min_confidence (single-label) or per-label thresholds (multi-label), with the schema's
 * descriptions; an empty box clears the setting (null). */
function decisionSettings(model, schema) {
  if (!hasRoute(schema, "patch", "/models/{model_id}")) return null;
  const fields = schema.components.schemas.ModelPatch.properties;
  const multi = model.problem_type === "multi_label_classification";
  const number = (id, value, label) => h("input", {type: "number", id, min: "0", max: "1", step: "0.01",
    value: value ?? "", "aria-label": label});
  const inputs = multi
    ? model.labels.map((label) => [label, number(`threshold-${label}`, model.thresholds?.[label], `threshold of ${label}`)])
    : [["min_confidence", number("min-confidence", model.min_confidence, "minimum confidence")]];
  const out = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "panel", "aria-labelledby": "decision-title"},
    h("h2", {id: "decision-title"}, multi ? "Thresholds" : "Minimum confidence"),
    h("p", {class: "hint"}, (multi ? fields.thresholds : fields.min_confidence).description ?? ""),
    h("div", {class: "row"}, inputs.map(([label, input]) => h("span", {}, multi ? `${label} ` : "", input))),
    h("p", {}, h("button", {type: "submit"}, "Save")), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const read = (input) => (input.value === "" ? null : Number(input.value));
    const set = inputs.filter(([, input]) => input.value !== "");
    const body = multi ? {thresholds: set.length ? Object.fromEntries(set.map(([l, i]) => [l, read(i)])) : null}
      : {min_confidence: read(inputs[0][1])};
    try {
      await send("PATCH", `/models/${model.id}`, body);
      out.replaceChildren(h("p", {}, "Saved: the next predictions use it."));
    } catch (error) {
      out.replaceChildren(errorBox(error));
    }
  });
  return form;
}

async function reportSection(model, who) {
  const section = h("section", {"aria-labelledby": "report-title"}, h("h2", {id: "report-title"}, "Evaluation report"));
  if (hasRoute(who.schema, "get", "/models/{model_id}/evaluation") === false) {
    section.append(notAvailable("Evaluation reports"));
    return section;
  }
  try {
    const evaluation = await get(`/models/${model.id}/evaluation`);
    section.append(h("p", {class: "note"}, `On the ${evaluation.source === "held_out" ? "held-out rows" : "dataset"}`,
      ` of ${evaluation.job_id ? "job " : ""}`, evaluation.job_id ? h("a", {href: `#/jobs/${evaluation.job_id}`},
        evaluation.job_id.slice(0, 8)) : "", `, ${fmt.date(evaluation.created_at)}.`), renderReport(evaluation.report));
  } catch (error) {
    section.append(isForbidden(error) ? h("p", {class: "note", id: "report-forbidden"}, "Your key's role may not read reports.")
      : error.status === 404 ? h("p", {class: "note"}, "This model has no held-out report (a model registered before reports existed has none).")
        : errorBox(error));
  }
  return section;
}

export async function modelPage({args: [id], who}) {
  const model = await get(`/models/${id}`);
  const admin = who.role === "admin";
  return [
    h("h1", {}, "Model ", shortId(model.id), " ", model.deployed ? badge("deployed") : ""),
    h("dl", {class: "facts panel"},
      h("dt", {}, "Base model"), h("dd", {}, model.base_model),
      h("dt", {}, "Kind"), h("dd", {}, (model.problem_type ?? "").replaceAll("_", " ")),
      h("dt", {}, "Labels"), h("dd", {}, model.labels.join(", ")),
      h("dt", {}, "Metrics"), h("dd", {}, Object.entries(model.metrics ?? {}).map(([k, v]) => `${k} ${fmt.num(v)}`).join(", ")),
      h("dt", {}, "Job"), h("dd", {}, admin && model.job_id ? h("a", {href: `#/jobs/${model.job_id}`}, model.job_id.slice(0, 8)) : model.job_id ?? "–"),
      h("dt", {}, "Size"), h("dd", {}, fmt.bytes(model.size_bytes)),
      h("dt", {}, "Created"), h("dd", {}, fmt.date(model.created_at))),
    admin ? await actions(model, who) : h("p", {class: "note"}, "A predict key may try the model; deploying and downloading need an admin key."),
    predictBox(model),
    admin ? decisionSettings(model, who.schema) : null,
    await reportSection(model, who),
    admin ? await evaluationsSection(model, who) : null,
  ];
}
