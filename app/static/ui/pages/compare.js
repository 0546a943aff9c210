// Compare: two models on the same rows. GET /evaluations/compare gives the per-class deltas of two evaluations
// on one dataset; models without one get a button that evaluates both (two evaluation jobs, followed by their
// events). Their held-out reports are shown side by side too, without deltas: those are different rows.
import {get, send} from "../api.js";
import {errorBox, fmt, go, h, notAvailable} from "../dom.js";
import {comparisonTables, headline, perClassTable} from "../report.js";
import {jobEnd} from "./jobs.js";
import {datasetPicker, evaluableBy, hasRoute} from "./models.js";

/** The newest evaluation of each dataset: {dataset id: evaluation}. */
function byDataset(evaluations) {
  const found = {};
  for (const e of evaluations) if (e.dataset_id && !(e.dataset_id in found)) found[e.dataset_id] = e;
  return found;
}

function evaluateBoth(models, datasets, signal) {
  const dataset = datasetPicker("compare-evaluate-dataset", evaluableBy(datasets, models));
  const out = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "panel"},
    h("p", {}, "These models have no evaluation on a common dataset, so their per-class figures do not compare."),
    h("div", {class: "row"}, h("label", {for: "compare-evaluate-dataset"}, "Evaluate both on"), dataset,
      h("button", {type: "submit", disabled: dataset.disabled}, "Evaluate both")), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const jobs = await Promise.all(models.map((m) => send("POST", `/models/${m.id}/evaluations`, {dataset_id: dataset.value})));
      out.replaceChildren(h("p", {}, "Evaluating: ", ...jobs.flatMap((job, i) => [i ? ", " : "",
        h("a", {href: `#/jobs/${job.id}`}, `job ${job.id.slice(0, 8)}`)]), "…"));
      const ends = await Promise.all(jobs.map((job) => jobEnd(job.id, signal)));
      const failed = ends.filter((job) => job?.status !== "succeeded");
      if (failed.length) out.replaceChildren(errorBox(failed.map((job) => `job ${job.id}: ${job.status} ${job.error ?? ""}`).join("; ")));
      else go(location.hash);
    } catch (error) {
      if (!signal.aborted) out.replaceChildren(errorBox(error));
    }
  });
  return form;
}

function heldOutSideBySide(reports) {
  return h("section", {"aria-labelledby": "held-out-title"},
    h("h2", {id: "held-out-title"}, "Held-out reports"),
    h("p", {class: "note"}, "Each on its own job's held-out rows: side by side, not as deltas."),
    h("div", {class: "grid"}, reports.map((evaluation, i) => h("section", {"aria-label": `Model ${"AB"[i]} held out`},
      h("h3", {}, `Model ${"AB"[i]}`), evaluation ? [headline(evaluation.report), perClassTable(evaluation.report)]
        : h("p", {class: "note"}, "No held-out report.")))));
}

export async function comparePage({args: [query], who, signal}) {
  const params = new URLSearchParams(query ?? "");
  const [models, datasets] = await Promise.all([get("/models?limit=200"), get("/datasets?limit=200")]);
  const picker = (key, text) => h("div", {}, h("label", {for: `compare-${key}`}, text),
    h("select", {id: `compare-${key}`, onchange: (event) => {
      params.set(key, event.target.value);
      params.delete("dataset");
      location.hash = `#/compare?${params}`;
    }}, h("option", {value: ""}, "choose a model"), models.items.map((m) => h("option", {value: m.id, selected: m.id === params.get(key)},
      `${m.id.slice(0, 8)} · ${m.base_model.split("/").pop()} · macro-F1 ${fmt.num(m.metrics?.eval_macro_f1)}${m.deployed ? " · deployed" : ""}`))));
  const head = [h("h1", {}, "Compare models"), h("div", {class: "panel grid"}, picker("a", "Model A"), picker("b", "Model B"))];
  if (!hasRoute(who.schema, "get", "/evaluations/compare")) return [...head, notAvailable("Comparing evaluations")];
  const [a, b] = [params.get("a"), params.get("b")];
  if (!a || !b) return [...head, h("p", {class: "note"}, "Choose two models.")];

  const lists = await Promise.all([a, b].map((id) => get(`/models/${id}/evaluations?limit=200`)));
  const [onA, onB] = lists.map((list) => byDataset(list.items));
  const common = datasets.items.filter((d) => onA[d.id] && onB[d.id]);
  const heldOut = heldOutSideBySide(lists.map((list) => list.items.find((e) => e.source === "held_out")));
  if (!common.length) {
    const pair = await Promise.all([a, b].map((id) => get(`/models/${id}`)));  // their kinds and labels
    return [...head, evaluateBoth(pair, datasets.items, signal), heldOut];
  }

  const chosen = common.find((d) => d.id === params.get("dataset")) ?? common[0];
  const on = h("select", {id: "compare-dataset", onchange: (event) => {
    params.set("dataset", event.target.value);
    location.hash = `#/compare?${params}`;
  }}, common.map((d) => h("option", {value: d.id, selected: d === chosen}, d.name)));
  const comparison = await get(`/evaluations/compare?a=${onA[chosen.id].id}&b=${onB[chosen.id].id}`);
  return [...head,
    h("section", {"aria-labelledby": "deltas-title"}, h("h2", {id: "deltas-title"}, "On the same rows"),
      h("div", {class: "row"}, h("label", {for: "compare-dataset"}, "Dataset"), on,
        h("span", {class: "note"}, `${fmt.int(comparison.a.report.n_rows)} rows`)),
      comparisonTables(comparison)),
    heldOut];
}
