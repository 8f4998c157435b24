// Asking for the train token where a change was refused (401): a small form that appears in
// place, keeps the token with the Train view's (api.js: this tab only) and retries the change.

import { hasTrainToken, setTrainToken } from "./api.js";

export function tokenForm(form) {
  const input = form.querySelector("input");
  let retry = null;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    setTrainToken(token);
    form.hidden = true;
    const again = retry;
    retry = null;
    if (again) again();
  });
  // Shows the form and returns words for the refused change's own error line.
  return function ask(onToken) {
    const rejected = hasTrainToken();
    retry = onToken;
    form.hidden = false;
    input.value = "";
    input.focus();
    return rejected ? "That token was not accepted: check it and try again."
      : "This server protects changes: enter its training token.";
  };
}
