// Which test set each accuracy is on, so the page compares like with like (issue 13).
//
// A model's metadata may carry `evaluations`: {"mnist" | "mnist-5k": {accuracy, size, split},
// "feedback": {...}}, every model scored on the same sets. Older models only have their
// `test_accuracy`, on the test split of the data set they were trained on: that is the same set
// as an evaluation when they were trained on mnist or mnist-5k, and a set of its own otherwise.

import { count, datasetName } from "./format.js";

const MNIST_KEYS = ["mnist", "mnist-5k"];

function evaluation(model, key) {
  const found = model.evaluations && model.evaluations[key];
  return found && typeof found.accuracy === "number" ? found : null;
}

function setLabel(name, split, size) {
  const title = name === "mnist" ? "MNIST" : name;
  return `${title} ${split || "test"}${typeof size === "number" ? `, ${count(size)}` : ""}`;
}

// Every MNIST-like score a model has, keyed by the set it is on ("mnist", "mnist-5k", "own:<name>").
function mnistScores(model) {
  const scores = [];
  for (const key of MNIST_KEYS) {
    const found = evaluation(model, key);
    if (found) scores.push({ key, accuracy: found.accuracy, set: setLabel(key, found.split, found.size) });
  }
  if (typeof model.test_accuracy === "number") {
    const name = datasetName(model);
    const size = model.dataset && typeof model.dataset.test === "number" ? model.dataset.test : undefined;
    if (MNIST_KEYS.includes(name) && !scores.some((score) => score.key === name)) {
      scores.push({ key: name, accuracy: model.test_accuracy, set: setLabel(name, "test", size) });
    } else if (!MNIST_KEYS.includes(name)) {
      scores.push({
        key: `own:${name}`, accuracy: model.test_accuracy,
        set: `its own test split${name ? ` (${name}${size ? `, ${count(size)}` : ""})` : ""}`,
      });
    }
  }
  return scores;
}

// The MNIST set the models are compared on: full MNIST when any model was scored on it, else
// mnist-5k when any was, else null (no comparable scores at all).
export function commonMnistKey(models) {
  for (const key of MNIST_KEYS) {
    if (models.some((model) => mnistScores(model).some((score) => score.key === key))) return key;
  }
  return null;
}

// The score to show in the MNIST column: the one on `commonKey` when the model has it (then
// `comparable`), else the best it has, marked with its set. Null when it has none.
export function mnistScore(model, commonKey) {
  const scores = mnistScores(model);
  const same = scores.find((score) => score.key === commonKey);
  if (same) return { ...same, comparable: true };
  const other = scores.find((score) => MNIST_KEYS.includes(score.key)) || scores[0];
  return other ? { ...other, comparable: false } : null;
}

// The header's words for the MNIST column's set, from any model scored on it.
export function commonMnistSet(models, commonKey) {
  for (const model of models) {
    const score = mnistScore(model, commonKey);
    if (score && score.comparable) return score.set;
  }
  return "";
}

// The accuracy on the person's own handwriting (the feedback test split), or null.
export function feedbackScore(model) {
  const found = evaluation(model, "feedback");
  if (!found) return null;
  return {
    accuracy: found.accuracy,
    size: found.size,
    set: `your handwriting, ${found.split || "test"}${typeof found.size === "number" ? `, ${count(found.size)}` : ""}`,
  };
}

// Sort keys, larger is better: comparable scores above marked ones, then by accuracy.
export function mnistRank(model, commonKey) {
  const score = mnistScore(model, commonKey);
  if (!score) return -1;
  return (score.comparable ? 2 : 1) + score.accuracy / 10;
}

export function feedbackRank(model) {
  const score = feedbackScore(model);
  return score ? score.accuracy : -1;
}
