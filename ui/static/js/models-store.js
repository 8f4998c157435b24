// The models on the volume, loaded once and shared by the picker and the models table.
// Anyone who changes the volume (a finished run, a delete) calls refresh(); subscribers redraw.

import { api } from "./api.js";

const listeners = new Set();
let state = { models: [], defaultName: null, error: null, loaded: false };

export function subscribe(listener) {
  listeners.add(listener);
  if (state.loaded) listener(state);
  return () => listeners.delete(listener);
}

export function current() {
  return state;
}

export async function refresh() {
  try {
    const body = await api.models();
    state = { models: body.models || [], defaultName: body.default ?? null, error: null, loaded: true };
  } catch (error) {
    state = { ...state, error, loaded: true };
  }
  for (const listener of listeners) listener(state);
  return state;
}
