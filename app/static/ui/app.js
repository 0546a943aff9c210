// The dashboard's entry: the key prompt, the role, and a hash router (#/datasets, #/jobs/<id>, ...) that
// renders one page at a time into <main>. Leaving a page aborts what it still runs (event streams).
import {ApiError, session, whoami} from "./api.js";
import {errorBox, h} from "./dom.js";
import {comparePage} from "./pages/compare.js";
import {datasetsPage} from "./pages/datasets.js";
import {jobPage, jobsPage, newJobPage} from "./pages/jobs.js";
import {modelPage, modelsPage} from "./pages/models.js";

const ROUTES = [  // [pattern, page, admin only]
  [/^#\/datasets(?:\/([^/?]+))?$/, datasetsPage, true],
  [/^#\/jobs\/new(?:\?(.*))?$/, newJobPage, true],
  [/^#\/jobs\/([^/?]+)$/, jobPage, true],
  [/^#\/jobs$/, jobsPage, true],
  [/^#\/models\/([^/?]+)$/, modelPage, false],
  [/^#\/models$/, modelsPage, false],
  [/^#\/compare(?:\?(.*))?$/, comparePage, true],
];

const main = document.getElementById("main");
let leaving = new AbortController();

// --- the key prompt: one dialog, however many calls are waiting for it ------------------------------------------
let pendingKey = null;

function askForKey(reason) {
  pendingKey ??= new Promise((resolve) => {
    const dialog = document.getElementById("key-dialog");
    const input = document.getElementById("key-input");
    document.getElementById("key-error").textContent = reason ?? "";
    dialog.querySelector("form").onsubmit = (event) => {
      event.preventDefault();
      session.setKey(input.value.trim());
      input.value = "";
      dialog.close();
      pendingKey = null;
      resolve();
      showSession();
    };
    dialog.oncancel = (event) => event.preventDefault();  // nothing works without a key
    dialog.showModal();
    input.focus();
  });
  return pendingKey;
}
session.onKeyNeeded(askForKey);

function showSession() {
  document.getElementById("forget-key").hidden = !session.key;
  // /docs is a page the browser navigates to, which carries no key: with keys it would answer 401
  document.querySelector("nav a[href='/docs']").parentElement.hidden = Boolean(session.key);
}

document.getElementById("forget-key").addEventListener("click", () => {
  session.forget();
  location.reload();
});

// --- routing --------------------------------------------------------------------------------------------------
async function render() {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  let who;
  try {
    who = await whoami();
  } catch (error) {
    main.replaceChildren(h("h2", {}, "The service did not answer"), errorBox(error));
    return;
  }
  document.body.dataset.role = who.role;
  document.getElementById("role").textContent = session.key ? `${who.role} key` : "";
  showSession();
  const hash = location.hash || (who.role === "admin" ? "#/datasets" : "#/models");
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  if (!found) {
    main.replaceChildren(h("h2", {}, "Page not found"), h("p", {}, h("a", {href: "#/models"}, "Models")));
    return;
  }
  const [pattern, page, adminOnly] = found;
  markCurrent(hash);
  if (adminOnly && who.role !== "admin") {
    main.replaceChildren(h("h2", {}, "Not for this key"),
      h("p", {}, `A ${who.role} key may not open this page; `, h("a", {href: "#/models"}, "see the models"), "."));
    return;
  }
  main.replaceChildren(h("p", {class: "loading"}, "Loading…"));
  try {
    const content = await page({args: hash.match(pattern).slice(1), signal, who});
    if (signal.aborted) return;
    main.replaceChildren(...[content].flat().filter((part) => part !== null && part !== undefined));
    main.dataset.page = hash;  // rendered: what a test (or a script) can wait for
  } catch (error) {
    if (signal.aborted) return;
    const title = error instanceof ApiError && error.status === 404 ? "Not found" : "Something went wrong";
    main.replaceChildren(h("h2", {}, title), errorBox(error));
  }
}

/** aria-current on the nav link of this page: the longest link the hash starts with. */
function markCurrent(hash) {
  const links = [...document.querySelectorAll("nav a[href^='#']")];
  const matches = (link) => hash === link.getAttribute("href") || hash.startsWith(`${link.getAttribute("href")}/`)
    || hash.startsWith(`${link.getAttribute("href")}?`);
  const current = links.filter(matches).sort((a, b) => b.getAttribute("href").length - a.getAttribute("href").length)[0];
  for (const link of links) {
    if (link === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// The skip link moves focus to the page's content: followed as a link, its "#main" would be routed as a page
document.querySelector("a.skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
// After a move to another page the keyboard starts in its content, as after a page load it starts at the skip link
window.addEventListener("hashchange", () => render().then(() => main.focus({preventScroll: true})));
render();
