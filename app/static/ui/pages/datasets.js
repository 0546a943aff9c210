// Datasets: drag-and-drop upload with the column choices read from the file's header, the list, one dataset's
// label counts as a bar chart and its warnings, delete.
import {get, request, send} from "../api.js";
import {barChart} from "../charts.js";
import {errorBox, fmt, go, h, table, toast} from "../dom.js";

const COLUMNS = [["label_column", "Label column"], ["text_column", "Text column"],
  ["text_pair_column", "Text pair column"]];

/** The header row's column names: TSV splits on tabs; CSV on commas outside quotes (RFC 4180). */
async function headerOf(file) {
  const first = (await file.slice(0, 64 * 1024).text()).replace(/^\uFEFF/, "").split(/\r?\n/)[0];
  if (!file.name.toLowerCase().endsWith(".csv")) return first.split("\t");
  return [...first.matchAll(/(?:^|,)("(?:[^"]|"")*"|[^,]*)/g)].map(([, cell]) =>
    cell.startsWith('"') ? cell.slice(1, -1).replaceAll('""', '"') : cell);
}

function uploadForm(onUploaded) {
  const input = h("input", {type: "file", id: "file", name: "file", accept: ".tsv,.csv,.txt,text/tab-separated-values,text/csv"});
  const chosen = h("span", {class: "note"}, "No file chosen");
  const zone = h("label", {class: "dropzone", for: "file"},
    h("strong", {}, "Drop a TSV or CSV file here"), h("br"), "or press to choose one (header row first, UTF-8)",
    h("br"), chosen, input);
  const selects = Object.fromEntries(COLUMNS.map(([name]) => [name, h("select", {id: name, name},
    h("option", {value: ""}, "(default)"))]));
  const result = h("div", {"aria-live": "polite"});
  let file = null;

  async function choose(picked) {
    file = picked;
    chosen.textContent = `${file.name} (${fmt.bytes(file.size)})`;
    const names = await headerOf(file);
    for (const select of Object.values(selects)) {
      select.replaceChildren(h("option", {value: ""}, "(default)"), ...names.map((n) => h("option", {value: n}, n)));
    }
  }
  input.addEventListener("change", () => input.files[0] && choose(input.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) choose(event.dataTransfer.files[0]);
  });

  const form = h("form", {class: "panel", "aria-labelledby": "upload-title"},
    h("h3", {id: "upload-title"}, "Upload a dataset"), zone,
    h("div", {class: "grid"},
      h("div", {}, h("label", {for: "ds-name"}, "Name"), h("input", {type: "text", id: "ds-name", name: "name"}),
        h("p", {class: "hint"}, "Default: the file name.")),
      ...COLUMNS.map(([name, text]) => h("div", {}, h("label", {for: name}, text), selects[name])),
      h("div", {}, h("label", {for: "label_delimiter"}, "Label delimiter (multi-label)"),
        h("input", {type: "text", id: "label_delimiter", name: "label_delimiter", maxlength: "8", size: "4"}),
        h("p", {class: "hint"}, "e.g. , or | — each label cell then holds one or more labels. Empty: single-label."),
        h("label", {class: "inline"}, h("input", {type: "checkbox", name: "allow_no_label", value: "true"}),
          "Rows may have no label"))),
    h("p", {}, h("button", {type: "submit"}, "Upload")), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!file) {
      result.replaceChildren(errorBox("Choose or drop a file first."));
      return;
    }
    const body = new FormData(form);
    body.set("file", file, file.name);
    for (const [name, value] of [...body.entries()]) if (value === "") body.delete(name);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    result.replaceChildren(h("p", {class: "loading"}, `Uploading ${file.name}…`));
    try {
      const dataset = await (await request("/datasets", {method: "POST", body})).json();
      result.replaceChildren();
      toast(`Uploaded ${dataset.name}: ${fmt.int(dataset.n_rows)} rows`);
      onUploaded(dataset);
    } catch (error) {
      result.replaceChildren(h("p", {}, "The file was refused:"), errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

/** The data checks' findings (datasets.warnings), when the server reports them. */
export function warningsBox(warnings, title = "Warnings") {
  if (!warnings?.length) return null;
  return h("div", {class: "warnings", role: "note"}, h("strong", {}, title),
    h("ul", {}, warnings.map((w) => h("li", {}, h("code", {}, w.kind), " ", w.message))));
}

function datasetDetail(dataset) {
  return h("section", {"aria-labelledby": "dataset-title"},
    h("h3", {id: "dataset-title"}, `Dataset ${dataset.name}`),
    h("dl", {class: "facts"},
      h("dt", {}, "Rows"), h("dd", {}, fmt.int(dataset.n_rows)),
      h("dt", {}, "Columns"), h("dd", {}, [dataset.label_column, dataset.text_column, dataset.text_pair_column]
        .filter(Boolean).join(", ")),
      h("dt", {}, "Kind"), h("dd", {}, dataset.multi_label
        ? `multi-label (split on "${dataset.label_delimiter}")` : "single-label"),
      h("dt", {}, "File"), h("dd", {}, `${dataset.filename} (${dataset.format}, ${fmt.bytes(dataset.size_bytes)})`),
      h("dt", {}, "sha256"), h("dd", {}, h("code", {}, dataset.sha256))),
    warningsBox(dataset.warnings, "Data checks"),
    barChart("Rows per label", dataset.labels, ["label", "rows"]).element,
    h("details", {}, h("summary", {}, "Label counts as a table"),
      table(["label", "rows"], Object.entries(dataset.labels).map(([l, n]) => [l, fmt.int(n)]), {numeric: [1]})),
    h("p", {}, h("a", {class: "button", href: `#/jobs/new?dataset=${dataset.id}`}, "Train a model on it")));
}

export async function datasetsPage({args: [selected]}) {
  const page = await get("/datasets?limit=200");
  const detail = selected ? datasetDetail(await get(`/datasets/${selected}`)) : null;
  const rows = page.items.map((d) => [
    h("a", {href: `#/datasets/${d.id}`}, d.name), fmt.int(d.n_rows), String(Object.keys(d.labels).length),
    d.warnings?.length ? `${d.warnings.length}` : "–", fmt.date(d.created_at),
    h("button", {type: "button", class: "danger", "aria-label": `Delete dataset ${d.name}`, onclick: async (event) => {
      if (!confirm(`Delete dataset ${d.name}?`)) return;
      try {
        await send("DELETE", `/datasets/${d.id}`);
        toast(`Deleted ${d.name}`);
        go("#/datasets");
      } catch (error) {
        event.target.after(errorBox(error));
      }
    }}, "Delete"),
  ]);
  return [
    h("h1", {}, "Datasets"),
    uploadForm((dataset) => go(`#/datasets/${dataset.id}`)),
    detail,
    page.items.length
      ? table(["name", "rows", "labels", "warnings", "uploaded", ""], rows, {caption: `${page.total} datasets`, numeric: [1, 2, 3]})
      : h("p", {class: "note"}, "No datasets yet."),
  ];
}
