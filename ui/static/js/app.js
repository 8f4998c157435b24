// The page's entry point: four views behind hash links (#predict, #train, #models, #feedback).

import { refresh } from "./models-store.js";
import { initPredict } from "./predict.js";
import { initTrain } from "./train.js";
import { initModels } from "./models.js";
import { initFeedback } from "./feedback.js";
import { initFirstModel } from "./first-model.js";

const VIEWS = ["predict", "train", "models", "feedback"];
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
  viewHooks.feedback = initFeedback();
  initFirstModel(document.getElementById("model-waiting"));
  window.addEventListener("hashchange", () => showView(location.hash.slice(1), { focus: true }));
  showView(location.hash.slice(1));
  refresh();
}

start();
