// Compare: two models' evaluation reports side by side, with each class's change from A to B.
import {get} from "../api.js";
import {errorBox, fmt, h, notAvailable, table} from "../dom.js";
import {headline, perClassTable} from "../report.js";
import {hasRoute} from "./models.js";

/** Per-class rows of two reports, matched by label: B − A for precision, recall and F1. */
function deltas(a, b) {
  const byLabel = new Map(a.per_class.map((c) => [c.label, c]));
  const signed = (x) => h("span", {class: x > 0 ? "better" : x < 0 ? "worse" : null}, `${x > 0 ? "+" : ""}${fmt.num(x)}`);
  return table(["label", "F1 A", "F1 B", "Δ F1", "Δ precision", "Δ recall"], b.per_class.filter((c) => byLabel.has(c.label))
    .map((c) => {
      const old = byLabel.get(c.label);
      return [c.label, fmt.num(old.f1), fmt.num(c.f1), signed(c.f1 - old.f1), signed(c.precision - old.precision),
        signed(c.recall - old.recall)];
    }), {caption: "Per-class change from A to B (green: B is better)", numeric: [1, 2, 3, 4, 5]});
}

export async function comparePage({args: [query], who}) {
  const params = new URLSearchParams(query ?? "");
  const models = (await get("/models?limit=200")).items;
  const picker = (key, text) => h("div", {}, h("label", {for: `compare-${key}`}, text),
    h("select", {id: `compare-${key}`, onchange: (event) => {
      params.set(key, event.target.value);
      location.hash = `#/compare?${params}`;
    }}, h("option", {value: ""}, "choose a model"), models.map((m) => h("option", {value: m.id, selected: m.id === params.get(key)},
      `${m.id.slice(0, 8)} · ${m.base_model.split("/").pop()} · macro-F1 ${fmt.num(m.metrics?.eval_macro_f1)}${m.deployed ? " · deployed" : ""}`))));
  const head = [h("h1", {}, "Compare models"), h("div", {class: "panel grid"}, picker("a", "Model A"), picker("b", "Model B"))];
  if (!hasRoute(who.schema, "get", "/models/{model_id}/evaluation")) return [...head, notAvailable("Evaluation reports")];
  if (!params.get("a") || !params.get("b")) return [...head, h("p", {class: "note"}, "Choose two models.")];
  let a, b;
  try {
    [a, b] = await Promise.all([get(`/models/${params.get("a")}/evaluation`), get(`/models/${params.get("b")}/evaluation`)]);
  } catch (error) {
    return [...head, errorBox(error)];
  }
  const side = (name, evaluation) => h("section", {"aria-label": `Model ${name}`}, h("h2", {}, `Model ${name}`),
    h("p", {}, h("a", {href: `#/models/${evaluation.model_id}`}, evaluation.model_id.slice(0, 8)),
      `, ${evaluation.source === "held_out" ? "held-out rows" : "dataset"} of ${fmt.int(evaluation.report.n_rows)}`),
    headline(evaluation.report), perClassTable(evaluation.report));
  return [...head,
    a.dataset_id !== b.dataset_id || a.source !== b.source ? h("p", {class: "warnings"},
      "These reports were measured on different rows, so the deltas compare different tests.") : null,
    h("section", {}, h("h2", {}, "Per-class deltas"), deltas(a.report, b.report)),
    h("div", {class: "grid"}, side("A", a), side("B", b))];
}
