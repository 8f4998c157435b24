// The HTTP API behind nginx, as in DESIGN.md. Every failure becomes an ApiError whose message is
// words a person can read: the service's own error message when it sent one.

export class ApiError extends Error {
  constructor(message, { status = 0, code = "network_error" } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's HTML page, say): fall back to the status line below.
  }
  const error = body && body.error;
  if (error && error.message) {
    return new ApiError(error.message, { status: response.status, code: error.code || "error" });
  }
  const words = response.status === 413 ? "The upload is too large."
    : response.status >= 500 ? "The service had a problem; try again in a moment."
    : `The request failed (${response.status} ${response.statusText}).`;
  return new ApiError(words, { status: response.status, code: `http_${response.status}` });
}

// When the train service has TRAIN_API_TOKEN set, its mutating routes need it as a bearer token.
// A person types it once in the train view; it lives in this tab only (sessionStorage).
const TOKEN_KEY = "digits-train-token";

export function setTrainToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function hasTrainToken() {
  return Boolean(sessionStorage.getItem(TOKEN_KEY));
}

function withToken(options) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...options, headers: { Authorization: `Bearer ${token}` } } : options;
}

export async function request(path, { method = "GET", json, body, signal, headers = {} } = {}) {
  const init = { method, signal, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("Cannot reach the server. Is it running?", { code: "network_error" });
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  models: () => request("/api/models"),
  model: (name) => request(`/api/models/${encodeURIComponent(name)}`),
  // A plain link, not a fetch: the browser downloads the .tar.gz itself.
  exportUrl: (name, format = "savedmodel") =>
    `/api/models/${encodeURIComponent(name)}/export?format=${encodeURIComponent(format)}`,
  predictImage: (dataUrl, model, signal) =>
    request("/api/predict", { method: "POST", json: model ? { image: dataUrl, model } : { image: dataUrl }, signal }),
  predictFile: (file, model, signal) => {
    const form = new FormData();
    form.append("image", file, file.name || "image.png");
    if (model) form.append("model", model);
    return request("/api/predict", { method: "POST", body: form, signal });
  },
  trainOptions: () => request("/api/train/options"),
  runs: () => request("/api/train/runs"),
  run: (id) => request(`/api/train/runs/${encodeURIComponent(id)}`),
  startRun: (params) => request("/api/train/runs", withToken({ method: "POST", json: params })),
  stopRun: (id) => request(`/api/train/runs/${encodeURIComponent(id)}/stop`,
    withToken({ method: "POST", json: {} })),
  runEventsUrl: (id) => `/api/train/runs/${encodeURIComponent(id)}/events`,
  deleteModel: (name) => request(`/api/train/models/${encodeURIComponent(name)}`,
    withToken({ method: "DELETE" })),
  // Scores a model on a test set (issue 13: "feedback", the person's own handwriting).
  evaluateModel: (name, dataset) => request(`/api/models/${encodeURIComponent(name)}/evaluate`,
    withToken({ method: "POST", json: { dataset } })),

  // Feedback: the person's answer to "Right?", kept on the volume as a labelled sample.
  sendFeedback: (sample) => request("/api/feedback", { method: "POST", json: sample }),
  feedback: (filters = {}) => {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const text = query.toString();
    return request(text ? `/api/feedback?${text}` : "/api/feedback");
  },
  reviewFeedback: (id, label) => request(`/api/feedback/${encodeURIComponent(id)}/review`,
    withToken({ method: "POST", json: label === undefined ? {} : { label } })),
  deleteFeedback: (id) => request(`/api/feedback/${encodeURIComponent(id)}`,
    withToken({ method: "DELETE" })),
  feedbackImageUrl: (id) => `/api/feedback/${encodeURIComponent(id)}/image`,
  // A plain link: the browser downloads feedback.npz itself.
  feedbackExportUrl: (includeUnreviewed = false) =>
    includeUnreviewed ? "/api/feedback/export?include_unreviewed=true" : "/api/feedback/export",
};
