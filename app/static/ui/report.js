// The evaluation report (model_core/report.py's shape, README "Evaluation report"): headline figures against
// the baselines, warnings, the per-class table, the confusion-matrix heatmap, calibration with its reliability
// diagram, coverage against confidence, and the most confident mistakes.
import {lineChart, merge} from "./charts.js";
import {fmt, h, table} from "./dom.js";
import {warningsBox} from "./pages/datasets.js";

const METRICS = [["accuracy", "accuracy"], ["macro_f1", "macro-F1"], ["weighted_f1", "weighted F1"],
  ["micro_f1", "micro-F1"], ["subset_accuracy", "subset accuracy"], ["loss", "loss"]];

/** The model's metrics beside the baselines'; a multi-label held-out report's thresholds were tuned on its rows,
 * so its cross-fitted metrics (model_core/report.py) get their own column. */
export function headline(report) {
  const baselines = report.baselines ?? {};
  const crossed = report.cross_fitted_metrics;
  const rows = METRICS.filter(([key]) => report.metrics[key] !== undefined).map(([key, name]) => [
    name, fmt.num(report.metrics[key]), ...(crossed ? [fmt.num(crossed[key])] : []),
    fmt.num(baselines.majority?.[key]), fmt.num(baselines.tfidf_logreg?.[key])]);
  const columns = ["metric", "this model", ...(crossed ? ["this model, thresholds cross-fitted"] : []),
    "majority class", "TF-IDF + logistic regression"];
  return table(columns, rows, {caption: `${fmt.int(report.n_rows)} rows, ${report.problem_type.replaceAll("_", " ")}`,
    numeric: columns.slice(1).map((_, i) => i + 1)});
}

export function perClassTable(report) {
  return table(["label", "precision", "recall", "F1", "support", ...(report.thresholds ? ["threshold"] : [])],
    report.per_class.map((c) => [c.label, fmt.num(c.precision), fmt.num(c.recall), fmt.num(c.f1), fmt.int(c.support),
      ...(report.thresholds ? [fmt.num(report.thresholds[c.label], 2)] : [])]),
    {caption: "Per class", numeric: [1, 2, 3, 4, 5]});
}

// A full row's share shades its cell at this opacity of the accent over white: dark text stays at 5:1 or more on
// every shade (white text would fall below 4.5:1 on the middle shades, from about 0.5 to 0.85)
const HEATMAP_DARKEST = 0.7;

/** Rows = true class, columns = predicted; each cell shaded by its share of the row (the recall of the diagonal). */
function heatmap(labels, matrix) {
  const cell = (count, rowTotal, trueLabel, predicted) => {
    const share = rowTotal ? count / rowTotal : 0;
    return h("td", {class: "cell", title: `true ${trueLabel}, predicted ${predicted}: ${count}`,
      style: `background: rgba(31, 95, 191, ${(HEATMAP_DARKEST * share).toFixed(3)})`}, String(count));
  };
  return h("div", {class: "table-wrap"}, h("table", {class: "heatmap", id: "confusion-matrix"},
    h("caption", {}, "Confusion matrix: rows are the true class, columns the predicted one; shade = share of the row"),
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, "true \\ predicted"),
      labels.map((l) => h("th", {scope: "col"}, l)))),
    h("tbody", {}, matrix.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      return h("tr", {}, h("th", {scope: "row"}, labels[i]), row.map((count, j) => cell(count, total, labels[i], labels[j])));
    }))));
}

function calibration(report) {
  const c = report.calibration;
  if (!c) return null;
  // multi-label: every (row, label) probability against whether the label is true; no temperature (thresholds instead)
  const multiLabel = report.problem_type === "multi_label_classification";
  const outcome = multiLabel ? "share true" : "accuracy";
  const used = c.reliability.filter((bin) => bin.count > 0);
  const chart = lineChart(`Reliability diagram (${multiLabel ? "every label's probability" : "after temperature scaling"})`,
    [{label: "perfect calibration", dash: [6, 4], color: "#555e68"}, {label: outcome, points: true}],
    [multiLabel ? "probability" : "confidence", outcome], {yRange: [0, 1]});
  chart.setData(merge([[0, 0], [1, 1]], used.map((bin) => [bin.confidence, bin.accuracy])));
  chart.note(multiLabel ? `ECE ${fmt.num(c.ece_before)}`
    : `ECE ${fmt.num(c.ece_before)} before, ${fmt.num(c.ece_after)} after temperature ${fmt.num(c.temperature, 2)}`);
  const summary = multiLabel
    ? [`Expected calibration error ${fmt.num(c.ece_before)} of every label's probability, each against whether the `,
      "label is true. Multi-label scores are not temperature-scaled: each label's threshold is tuned instead."]
    : [`Expected calibration error ${fmt.num(c.ece_before)} before and ${fmt.num(c.ece_after)} after `,
      `temperature scaling (T = ${fmt.num(c.temperature, 2)}).`,
      c.cross_fitted && " T was fitted on these rows, so the after figures are cross-fitted: each fifth of the " +
        "rows is scaled by a T fitted on the other four."];
  return h("div", {},
    h("h3", {}, "Calibration"),
    h("p", {}, ...summary),
    h("div", {class: "grid"}, chart.element,
      table([multiLabel ? "probability bin" : "confidence bin", "rows", `mean ${multiLabel ? "probability" : "confidence"}`,
        outcome], c.reliability.map((bin) => [
        `${bin.bin_lower.toFixed(1)}–${bin.bin_upper.toFixed(1)}`, fmt.int(bin.count), fmt.num(bin.confidence),
        fmt.num(bin.accuracy)]), {caption: "Reliability table", numeric: [1, 2, 3]})));
}

function mistakes(report) {
  if (!report.confident_mistakes?.length) return h("p", {class: "note"}, "No confident mistakes.");
  const labels = (value) => (Array.isArray(value) ? value.join(", ") || "(none)" : String(value));
  return table(["text", "true", "predicted", "score"], report.confident_mistakes.map((m) => [
    m.text_pair ? `${m.text} ⟨pair⟩ ${m.text_pair}` : m.text, labels(m.true), labels(m.predicted), fmt.num(m.score)]),
  {caption: "The most confident mistakes", numeric: [3]});
}

export function renderReport(report) {
  return h("div", {class: "report"},
    warningsBox(report.warnings, "Report warnings"),
    headline(report),
    perClassTable(report),
    report.confusion_matrix ? heatmap(report.labels, report.confusion_matrix) : null,
    calibration(report),
    report.coverage?.length ? table(["min confidence", "coverage", "accuracy"], report.coverage.map((c) => [
      fmt.num(c.min_confidence, 2), fmt.pct(c.coverage), fmt.num(c.accuracy)]),
    {caption: "Coverage: answering only above a confidence", numeric: [0, 1, 2]}) : null,
    h("h3", {}, "Confident mistakes"), mistakes(report));
}

/** The compare endpoint's (and the gate refusal's) comparison: accuracy and macro-F1, then each class's
 * precision, recall and F1 for A and B with the change (delta = B − A, green when B is better). */
export function comparisonTables(comparison) {
  const signed = (x) => (x === null ? "–"
    : h("span", {class: x > 0 ? "better" : x < 0 ? "worse" : null}, `${x > 0 ? "+" : ""}${fmt.num(x)}`));
  const triple = (d) => [fmt.num(d.a), fmt.num(d.b), signed(d.delta)];
  return h("div", {},
    table(["metric", "A", "B", "Δ (B − A)"], [["accuracy", ...triple(comparison.accuracy)],
      ["macro-F1", ...triple(comparison.macro_f1)]], {caption: "Overall", numeric: [1, 2, 3]}),
    table(["label", "support", "F1 A", "F1 B", "Δ F1", "Δ precision", "Δ recall"], comparison.per_class.map((c) => [
      c.label, fmt.int(c.support), fmt.num(c.f1.a), fmt.num(c.f1.b), signed(c.f1.delta), signed(c.precision.delta),
      signed(c.recall.delta)]), {caption: "Per-class change from A to B (green: B is better)", numeric: [1, 2, 3, 4, 5, 6]}));
}
