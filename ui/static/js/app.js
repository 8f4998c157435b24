// The page's entry point: three views behind hash links (#predict, #train, #models).

import { refresh } from "./models-store.js";
import { initPredict } from "./predict.js";
import { initTrain } from "./train.js";
import { initModels } from "./models.js";

const VIEWS = ["predict", "train", "models"];
const viewHooks = {};

function showView(name, { focus = false } = {}) {
  const view = VIEWS.includes(name) ? name : "predict";
  for (const section of document.querySelectorAll("[data-view]")) {
    section.hidden = section.dataset.view !== view;
  }
  for (const link of document.querySelectorAll("[data-view-link]")) {
    if (link.dataset.viewLink === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view[0].toUpperCase()}${view.slice(1)} · digits`;
  if (viewHooks[view]) viewHooks[view]();
  if (focus) document.getElementById("main").focus({ preventScroll: true });
}

function start() {
  viewHooks.predict = initPredict();
  viewHooks.train = initTrain();
  viewHooks.models = initModels();
  window.addEventListener("hashchange", () => showView(location.hash.slice(1), { focus: true }));
  showView(location.hash.slice(1));
  refresh();
}

start();
